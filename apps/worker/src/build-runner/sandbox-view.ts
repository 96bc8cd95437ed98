import { execFile } from 'node:child_process';
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { SANDBOX_PATH, type SandboxAccount } from './sandbox-probe.js';

/**
 * What a job may see of the host besides its own folder: an ALLOWLIST, never the host minus a denylist. The
 * system folders (/usr and the merged-/usr links, see sandbox-probe.ts), the few files of /etc the loader, the
 * compiler alternatives and the C library read, and the Python toolchain exactly as the interpreter itself
 * reports it (its prefix, base prefix, sys.path and the packages the driver imports). Everything else — the
 * repository, `.env`, `.kiln/` (keys, data, logs, other jobs), /root, /home, /run (the PostgreSQL socket), other
 * processes — does not exist inside the sandbox.
 */

/** Files of /etc a compile needs: dynamic loader cache and config, compiler alternatives (c++ → g++), timezone. */
export const ETC_ALLOWLIST = [
  '/etc/alternatives',
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/localtime',
  '/etc/nsswitch.conf',
  '/etc/os-release',
];

/** The /etc/passwd and /etc/group a job sees: root and its own account only (no host user list). */
export function sandboxPasswd(
  account: SandboxAccount | null,
  self: { uid: number; gid: number },
): {
  passwd: string;
  group: string;
} {
  const user = account ?? { user: 'kiln-job', uid: self.uid, gid: self.gid };
  const passwd = [
    'root:x:0:0:root:/nonexistent:/usr/sbin/nologin',
    `${user.user}:x:${user.uid}:${user.gid}:${user.user}:/nonexistent:/usr/sbin/nologin`,
  ];
  const group = ['root:x:0:', `${account ? 'nogroup' : 'kiln-job'}:x:${user.gid}:`];
  return { passwd: `${passwd.join('\n')}\n`, group: `${group.join('\n')}\n` };
}

/** Existing entries of ETC_ALLOWLIST on this host. */
export async function etcView(): Promise<string[]> {
  const found: string[] = [];
  for (const p of ETC_ALLOWLIST) if (await exists(p)) found.push(p);
  return found;
}

/** Device nodes of NVIDIA GPUs (/dev/nvidia0, nvidiactl, nvidia-uvm, …): what a CUDA build needs of /dev. */
export async function gpuDevices(devDir = '/dev'): Promise<string[]> {
  const entries = await readdir(devDir).catch(() => [] as string[]);
  return entries
    .filter((e) => /^nvidia(\d+|ctl|-uvm|-uvm-tools|-modeset)$/.test(e))
    .sort()
    .map((e) => path.join(devDir, e));
}

export interface PythonToolchain {
  /** realpath of sys.executable. */
  executable: string;
  prefix: string;
  basePrefix: string;
  /** sys.path without '' (what the interpreter imports from). */
  path: string[];
  /** Folders of the packages the driver imports (editable installs live outside site-packages). */
  packages: Record<string, string[]>;
}

const DISCOVER = `
import importlib.util, json, os, sys
out = {"executable": os.path.realpath(sys.executable), "prefix": sys.prefix, "basePrefix": sys.base_prefix,
       "path": [p for p in sys.path if p], "packages": {}}
for name in ("kiln_driver", "kiln_runtime"):
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        out["packages"][name] = [str(p) for p in spec.submodule_search_locations]
    elif spec is not None and spec.origin:
        out["packages"][name] = [os.path.dirname(spec.origin)]
print(json.dumps(out))
`;

const toolchains = new Map<string, Promise<PythonToolchain>>();

/**
 * Asks the interpreter where it lives and what it imports from, with the environment the job will have
 * (PYTHONPATH included). Cached per interpreter and PYTHONPATH.
 */
export function discoverPython(pythonPath: string, env: Record<string, string> = {}): Promise<PythonToolchain> {
  const key = `${pythonPath}\0${env.PYTHONPATH ?? ''}`;
  let pending = toolchains.get(key);
  if (!pending) {
    pending = new Promise((resolve, reject) => {
      execFile(
        pythonPath,
        ['-c', DISCOVER],
        {
          timeout: 60_000,
          killSignal: 'SIGKILL',
          cwd: '/',
          env: {
            PATH: SANDBOX_PATH,
            LANG: 'C.UTF-8',
            PYTHONNOUSERSITE: '1',
            PYTHONSAFEPATH: '1',
            ...(env.PYTHONPATH ? { PYTHONPATH: env.PYTHONPATH } : {}),
          },
        },
        (err, stdout, stderr) => {
          if (err) return reject(new Error(`cannot ask ${pythonPath} for its paths: ${stderr.trim() || err.message}`));
          try {
            resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as PythonToolchain);
          } catch {
            reject(new Error(`${pythonPath} did not report its paths: ${stdout.slice(0, 500)}`));
          }
        },
      );
    });
    toolchains.set(key, pending);
    pending.catch(() => toolchains.delete(key));
  }
  return pending;
}

/**
 * The read-only folders a job needs to run `python -m kiln_driver`: the interpreter's prefixes, every existing
 * sys.path entry and the driver's packages, minus what the system view already shows.
 */
export async function pythonView(pythonPath: string, env: Record<string, string> = {}): Promise<string[]> {
  const py = await discoverPython(pythonPath, env);
  const candidates = [
    path.dirname(path.dirname(py.executable)),
    py.prefix,
    py.basePrefix,
    ...py.path,
    ...Object.values(py.packages).flat(),
    // The venv's own python is a symlink to the base interpreter: the link's folder must exist too.
    path.dirname(path.resolve(pythonPath)),
  ];
  const found: string[] = [];
  for (const c of candidates) {
    if (!path.isAbsolute(c)) continue;
    // A zip on sys.path (python311.zip) usually does not exist; a real one is a file, bound like a folder.
    const real = await realpath(c).catch(() => null);
    if (real) found.push(path.resolve(c));
  }
  return minimalRoots(found);
}

/** The paths without those inside another one of them (a bind of a folder shows its sub-folders). */
export function minimalRoots(paths: readonly string[]): string[] {
  const sorted = [...new Set(paths.map((p) => path.resolve(p)))].sort();
  const roots: string[] = [];
  for (const p of sorted) if (!roots.some((r) => isWithin(p, r))) roots.push(p);
  return roots;
}

export function isWithin(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
