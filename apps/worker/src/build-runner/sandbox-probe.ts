import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile, readlink, lstat, stat } from 'node:fs/promises';
import path from 'node:path';
import { type CgroupLayout, probeCgroups } from './cgroup-limits.js';

/**
 * What this host offers the build sandbox: the tools (bubblewrap, setpriv, prlimit), whether the worker is root
 * and can drop jobs to `nobody`, whether bubblewrap can set up its namespaces as that user, and the cgroups job
 * limits are created in. Probed once by trying each part for real, then cached. This says what COULD hold; the
 * worker's self-test (sandbox-self-test.ts) checks from inside a job what DOES hold before any build queue is
 * polled.
 */

/** PATH of every sandboxed process (and of the host probe, so both find the same compiler). */
export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The system folders a job's view starts from (read-only); the merged-/usr symlinks among them are recreated. */
export const SYSTEM_ROOTS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** First executable called `name` on `searchPath` (or `name` itself when it is a path). */
export async function findExecutable(name: string, searchPath: string = SANDBOX_PATH): Promise<string | null> {
  const candidates = name.includes('/')
    ? [path.resolve(name)]
    : searchPath
        .split(':')
        .filter(Boolean)
        .map((d) => path.join(d, name));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return null;
}

export interface SandboxAccount {
  user: string;
  uid: number;
  gid: number;
}

export interface SandboxHost {
  uid: number;
  gid: number;
  isRoot: boolean;
  tools: { sh: string; bwrap: string | null; setpriv: string | null; prlimit: string | null };
  /** `bwrap --version` ("bubblewrap 0.8.0"). */
  bwrapVersion: string | null;
  /** The account jobs run as (nobody): only a root worker with setpriv can drop to it. */
  account: SandboxAccount | null;
  /** bubblewrap set up its namespaces (user, pid, net, mount, ipc, uts) as the job's user: tried once. */
  bwrapWorks: boolean;
  /** Where job cgroups are created (memory, pids, cpu); null when none is usable. */
  cgroups: CgroupLayout | null;
  /** The worker's hard RLIMIT_NOFILE (a job cannot get more); null = unknown. */
  nofileHardLimit: number | null;
  /** Entries of SYSTEM_ROOTS that are symlinks on this host (merged /usr: "/bin" → "usr/bin"). */
  rootSymlinks: Record<string, string>;
  /** Entries of SYSTEM_ROOTS that are real folders on this host. */
  rootFolders: string[];
  /** Why a part is unavailable. */
  notes: string[];
  /**
   * Walls the worker's self-test found missing from inside a job although the tools are there (a bubblewrap that
   * shares the network, say). Set by the worker after the self-test; every plan then counts them as missing.
   */
  failedSelfTest?: { wall: string; why: string }[];
}

export interface SandboxProbeOptions {
  /** The bubblewrap binary (KILN_SANDBOX_BWRAP); default: `bwrap` on SANDBOX_PATH. */
  bwrap?: string;
  /** A delegated cgroup (v2) or cgroup folder (v1) to create job cgroups in instead of the worker's own. */
  cgroupParent?: string;
  /** Probe again instead of answering from the cache. */
  refresh?: boolean;
}

const cache = new Map<string, Promise<SandboxHost>>();

/** What this host offers the sandbox (cached per option set). */
export function probeSandboxHost(opts: SandboxProbeOptions = {}): Promise<SandboxHost> {
  const key = JSON.stringify([opts.bwrap ?? '', opts.cgroupParent ?? '']);
  let pending = cache.get(key);
  if (!pending || opts.refresh) {
    pending = doProbe(opts);
    cache.set(key, pending);
    pending.catch(() => cache.delete(key));
  }
  return pending;
}

export function runTool(
  file: string,
  args: string[],
  timeoutMs = 15_000,
): Promise<{ ok: boolean; code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', env: { PATH: SANDBOX_PATH, LANG: 'C.UTF-8' } },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : null
          : 0;
        resolve({ ok: !err, code, output: `${stdout}${stderr}`.trim() });
      },
    );
  });
}

async function lookupAccount(): Promise<SandboxAccount> {
  // nobody:nogroup (Debian), nobody:nobody (RHEL); 65534 when the files say nothing.
  const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '');
  const group = await readFile('/etc/group', 'utf8').catch(() => '');
  const userLine = passwd.split('\n').find((l) => l.startsWith('nobody:'));
  const uid = userLine ? Number(userLine.split(':')[2]) : 65534;
  const gid =
    ['nogroup', 'nobody']
      .map((name) => group.split('\n').find((l) => l.startsWith(`${name}:`)))
      .filter((l): l is string => Boolean(l))
      .map((l) => Number(l.split(':')[2]))[0] ?? (userLine ? Number(userLine.split(':')[3]) : 65534);
  return { user: 'nobody', uid, gid };
}

async function systemRoots(): Promise<{ symlinks: Record<string, string>; folders: string[] }> {
  const symlinks: Record<string, string> = {};
  const folders: string[] = [];
  for (const root of SYSTEM_ROOTS) {
    const st = await lstat(root).catch(() => null);
    if (!st) continue;
    if (st.isSymbolicLink()) symlinks[root] = await readlink(root);
    else if (st.isDirectory()) folders.push(root);
  }
  return { symlinks, folders };
}

/** The setpriv arguments that drop a root worker to `account` for good (no groups, no capabilities, no setuid gains). */
export function dropPrivilegeArgs(account: SandboxAccount): string[] {
  return [
    `--reuid=${account.uid}`,
    `--regid=${account.gid}`,
    '--clear-groups',
    '--no-new-privs',
    '--bounding-set=-all',
    '--inh-caps=-all',
  ];
}

/** The bubblewrap arguments of a minimal view of the system folders (shared by the probe and the plan). */
export function systemViewArgs(host: Pick<SandboxHost, 'rootSymlinks' | 'rootFolders'>): string[] {
  const args: string[] = [];
  for (const folder of host.rootFolders) args.push('--ro-bind', folder, folder);
  for (const [link, target] of Object.entries(host.rootSymlinks)) args.push('--symlink', target, link);
  return args;
}

async function doProbe(opts: SandboxProbeOptions): Promise<SandboxHost> {
  const notes: string[] = [];
  const uid = process.getuid?.() ?? -1;
  const gid = process.getgid?.() ?? -1;
  const isRoot = uid === 0;
  const tools = {
    sh: (await findExecutable('sh')) ?? '/bin/sh',
    bwrap: opts.bwrap ? await findExecutable(opts.bwrap) : await findExecutable('bwrap'),
    setpriv: await findExecutable('setpriv'),
    prlimit: await findExecutable('prlimit'),
  };
  if (!tools.bwrap) {
    notes.push(
      `bubblewrap (${opts.bwrap ?? 'bwrap'}) not found: no network, pid or mount namespace for jobs ` +
        '(Debian/Ubuntu: apt-get install bubblewrap; scripts/setup.sh does)',
    );
  }
  if (!tools.prlimit) notes.push('prlimit not found (util-linux): no RLIMIT_NOFILE/RLIMIT_CORE for jobs');
  if (!tools.setpriv) notes.push('setpriv not found (util-linux): jobs cannot be dropped to nobody');

  let account: SandboxAccount | null = null;
  if (!isRoot) {
    notes.push(`the worker runs as uid ${uid}, not root: jobs cannot run as nobody, and cgroups need root`);
  } else if (tools.setpriv) {
    const candidate = await lookupAccount();
    const check = await runTool(tools.setpriv, [...dropPrivilegeArgs(candidate), '--', tools.sh, '-c', 'exit 0']);
    if (check.ok) account = candidate;
    else notes.push(`setpriv cannot drop to ${candidate.user}: ${check.output || `exit ${check.code}`}`);
  }

  const roots = await systemRoots();
  let bwrapVersion: string | null = null;
  let bwrapWorks = false;
  if (tools.bwrap) {
    const version = await runTool(tools.bwrap, ['--version']);
    bwrapVersion = version.ok ? version.output.split('\n')[0] : null;
    // Exactly how jobs start it: as the job's user, every namespace, a fresh /proc and /dev.
    const trial = [
      ...(account && tools.setpriv ? [tools.setpriv, ...dropPrivilegeArgs(account), '--'] : []),
      tools.bwrap,
      ...BWRAP_NAMESPACE_ARGS,
      ...systemViewArgs({ rootSymlinks: roots.symlinks, rootFolders: roots.folders }),
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--',
      tools.sh,
      '-c',
      'exit 0',
    ];
    const result = await runTool(trial[0], trial.slice(1));
    bwrapWorks = result.ok;
    if (!result.ok) {
      notes.push(
        `bubblewrap cannot set up the job's namespaces${account ? ` as ${account.user}` : ''}: ` +
          `${result.output || `exit ${result.code}`} (unprivileged user namespaces disabled? ` +
          'check user.max_user_namespaces and kernel.apparmor_restrict_unprivileged_userns)',
      );
    }
  }

  const cg = await probeCgroups({ parent: opts.cgroupParent });
  notes.push(...cg.notes);
  if (!cg.layout) notes.push('no usable cgroup: no memory or pids limit for jobs');

  let nofileHardLimit: number | null = null;
  if (tools.prlimit) {
    const out = await runTool(tools.prlimit, ['--pid', String(process.pid), '--nofile', '--raw', '--noheadings']);
    const hard = out.output.trim().split(/\s+/).pop();
    if (out.ok && hard && /^\d+$/.test(hard)) nofileHardLimit = Number(hard);
  }

  return {
    uid,
    gid,
    isRoot,
    tools,
    bwrapVersion,
    account,
    bwrapWorks,
    cgroups: cg.layout,
    nofileHardLimit,
    rootSymlinks: roots.symlinks,
    rootFolders: roots.folders,
    notes,
  };
}

/**
 * The namespaces of every job: its own user (the only way bubblewrap runs without privileges), pid, network,
 * IPC, UTS and cgroup namespaces, and no further user namespaces inside (the kernel code nested user namespaces
 * expose is a classic way out).
 */
export const BWRAP_NAMESPACE_ARGS = [
  '--unshare-user',
  '--unshare-pid',
  '--unshare-net',
  '--unshare-ipc',
  '--unshare-uts',
  '--unshare-cgroup-try',
  '--disable-userns',
  '--die-with-parent',
];
