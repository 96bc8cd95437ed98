import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, lchown, lstat, mkdir, readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  type CgroupLayout,
  type CgroupStats,
  createJobCgroup,
  type JobCgroup,
  killJobCgroup,
  probeCgroups,
  readJobCgroupStats,
  removeJobCgroup,
} from './cgroup-limits.js';
import { OutputCapture } from './output-capture.js';

/**
 * Runs an untrusted command (the compile driver loading a user's model) in the strongest sandbox this host
 * allows, and reports what was actually enforced. Layers, outermost first:
 *
 *   sh (joins the job's cgroups: memory, pids, cpu)
 *   └ setpriv --pdeathsig KILL        the tree dies with the worker
 *     └ prlimit                       RLIMIT_NOFILE, RLIMIT_CORE=0 (and RLIMIT_AS only without cgroups)
 *       └ unshare --net --pid --mount --ipc --uts --fork --kill-child --mount-proc
 *         └ sh (root in the new namespaces: private tmpfs over /tmp, /var/tmp, /dev/shm and other jobs'
 *              folders; the job folder bound back in)
 *           └ setpriv --reuid/--regid nobody --clear-groups --no-new-privs, no capabilities
 *             └ argv
 *
 * Every layer degrades on its own when the host does not allow it (no root: a user namespace still gives
 * no network; no cgroups: RLIMIT_AS; no unshare: host network), and `applied` says which ones held.
 * The child never sees the worker's environment: only what the caller passes, plus PATH and LANG.
 *
 * Stopping (timeout, abort): SIGTERM to the process group, SIGKILL to the group and to every pid left in the
 * job's cgroups after the grace period. Inside a pid namespace the command is the namespace's init: it only
 * receives SIGTERM if it installs a handler (the compile driver does); its children die on TERM, and the whole
 * namespace dies with the init, even processes that escaped the process group with setsid().
 */

/** PATH of every sandboxed process (and of the host probe, so both find the same compiler). */
export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const TOOL_PATH = SANDBOX_PATH;
const DEFAULT_TAIL_CHARS = 64 * 1024;
const DEFAULT_KILL_GRACE_MS = 5_000;
const DEFAULT_PIDS_LIMIT = 4096;
const DEFAULT_NOFILE = 16_384;
/** Paths that get a fresh, private tmpfs inside the sandbox (when nothing the command needs lives there). */
const PRIVATE_TMP_PATHS = ['/tmp', '/var/tmp', '/dev/shm'];

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

export interface SandboxCapabilities {
  uid: number;
  gid: number;
  isRoot: boolean;
  tools: {
    sh: string;
    unshare: string | null;
    setpriv: string | null;
    prlimit: string | null;
    mount: string | null;
  };
  /**
   * New namespaces for the job: `privileged` (we are root), `user` (unprivileged user namespace, mapped
   * to root inside), null (none). `pidAndMount`: pid + mount namespaces with a fresh /proc as well, not
   * only network/ipc/uts.
   */
  namespaces: { mode: 'privileged' | 'user'; pidAndMount: boolean } | null;
  /** Unprivileged account the job runs as (needs root and setpriv). */
  dropTo: { user: string; uid: number; gid: number } | null;
  /** Hardening options this setpriv accepts (versions differ). */
  setprivHardening: string[];
  cgroups: CgroupLayout | null;
  /** The worker's hard RLIMIT_NOFILE (the job cannot get more without CAP_SYS_RESOURCE); null = unknown. */
  nofileHardLimit: number | null;
  /** Why a layer is unavailable on this host. */
  notes: string[];
}

export interface SandboxProbeOptions {
  /** A delegated cgroup (v2) or cgroup folder (v1) to create job cgroups in instead of the worker's own. */
  cgroupParent?: string;
  /** Probe again instead of answering from the cache. */
  refresh?: boolean;
}

let cachedCapabilities: Promise<SandboxCapabilities> | null = null;

/** What this host lets the sandbox enforce. Probed by trying each layer for real once, then cached. */
export function probeSandboxCapabilities(opts: SandboxProbeOptions = {}): Promise<SandboxCapabilities> {
  if (!cachedCapabilities || opts.refresh) {
    cachedCapabilities = doProbe(opts);
    cachedCapabilities.catch(() => {
      cachedCapabilities = null;
    });
  }
  return cachedCapabilities;
}

function tryRun(file: string, args: string[], timeoutMs = 10_000): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', env: { PATH: TOOL_PATH } },
      (err, stdout, stderr) => resolve({ ok: !err, output: `${stdout}${stderr}`.trim() }),
    );
  });
}

async function lookupAccount(): Promise<{ user: string; uid: number; gid: number }> {
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

async function doProbe(opts: SandboxProbeOptions): Promise<SandboxCapabilities> {
  const notes: string[] = [];
  const uid = process.getuid?.() ?? -1;
  const gid = process.getgid?.() ?? -1;
  const isRoot = uid === 0;
  const tools = {
    sh: (await findExecutable('sh', TOOL_PATH)) ?? '/bin/sh',
    unshare: await findExecutable('unshare', TOOL_PATH),
    setpriv: await findExecutable('setpriv', TOOL_PATH),
    prlimit: await findExecutable('prlimit', TOOL_PATH),
    mount: await findExecutable('mount', TOOL_PATH),
  };
  if (!tools.unshare) notes.push('unshare not found: the job keeps the host network');
  if (!tools.setpriv) notes.push('setpriv not found: the job keeps the worker’s user and capabilities');
  if (!tools.prlimit) notes.push('prlimit not found: no RLIMIT_NOFILE/RLIMIT_CORE/RLIMIT_AS');

  let namespaces: SandboxCapabilities['namespaces'] = null;
  if (tools.unshare) {
    const full = ['--net', '--ipc', '--uts', '--pid', '--fork', '--kill-child', '--mount', '--mount-proc'];
    const netOnly = ['--net', '--ipc', '--uts'];
    const attempts: { mode: 'privileged' | 'user'; pidAndMount: boolean; args: string[] }[] = [];
    if (isRoot) {
      attempts.push({ mode: 'privileged', pidAndMount: true, args: full });
      attempts.push({ mode: 'privileged', pidAndMount: false, args: netOnly });
    }
    attempts.push({ mode: 'user', pidAndMount: true, args: ['--user', '--map-root-user', ...full] });
    attempts.push({ mode: 'user', pidAndMount: false, args: ['--user', '--map-root-user', ...netOnly] });
    for (const attempt of attempts) {
      const result = await tryRun(tools.unshare, [...attempt.args, '--', tools.sh, '-c', 'exit 0']);
      if (result.ok) {
        namespaces = { mode: attempt.mode, pidAndMount: attempt.pidAndMount };
        break;
      }
      notes.push(`unshare ${attempt.args.join(' ')} failed: ${result.output || 'exit status non-zero'}`);
    }
    if (namespaces) {
      // Earlier failures are expected fallbacks; keep only the outcome.
      notes.splice(0, notes.length, ...notes.filter((n) => !n.startsWith('unshare ')));
      if (!namespaces.pidAndMount) notes.push('no pid/mount namespace: the job sees host processes and /tmp');
    } else {
      notes.push('namespaces unavailable (no root, user namespaces disabled): the job keeps the host network');
    }
  }

  let dropTo: SandboxCapabilities['dropTo'] = null;
  let setprivHardening: string[] = [];
  if (tools.setpriv) {
    const hardening = [
      '--no-new-privs',
      '--bounding-set=-all',
      '--inh-caps=-all',
      '--securebits=+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked,+keep_caps_locked',
    ];
    for (const flag of hardening) {
      if ((await tryRun(tools.setpriv, [flag, '--', tools.sh, '-c', 'exit 0'])).ok) setprivHardening.push(flag);
    }
    if (isRoot) {
      const account = await lookupAccount();
      const ids = [`--reuid=${account.uid}`, `--regid=${account.gid}`, '--clear-groups'];
      // Some combinations fail on some kernels/versions: shed hardening flags from the end until the drop works.
      let output = '';
      for (let keep = setprivHardening.length; keep >= 0 && !dropTo; keep--) {
        const flags = setprivHardening.slice(0, keep);
        const check = await tryRun(tools.setpriv, [...ids, ...flags, '--', tools.sh, '-c', 'exit 0']);
        if (check.ok) {
          dropTo = account;
          setprivHardening = flags;
        } else {
          output = check.output;
        }
      }
      if (!dropTo) notes.push(`cannot drop to nobody with setpriv: ${output}`);
    } else {
      notes.push('not root: the job runs as the worker’s own user');
    }
  }

  const cg = await probeCgroups({ parent: opts.cgroupParent });
  notes.push(...cg.notes);
  if (!cg.layout) notes.push('no usable cgroup: memory is limited per process with RLIMIT_AS only');

  const limits = await readFile('/proc/self/limits', 'utf8').catch(() => '');
  const nofileHard = /^Max open files\s+\S+\s+(\d+)/m.exec(limits)?.[1];
  const nofileHardLimit = nofileHard ? Number(nofileHard) : null;

  return { uid, gid, isRoot, tools, namespaces, dropTo, setprivHardening, cgroups: cg.layout, nofileHardLimit, notes };
}

export interface RunSandboxedOptions {
  argv: string[];
  cwd: string;
  /** The child's whole environment, besides PATH and LANG (which get defaults when absent). */
  env: Record<string, string>;
  timeoutMs: number;
  memoryBytes: number;
  signal?: AbortSignal;
  onStdoutLine?: (line: string) => void;
  onStderrLine?: (line: string) => void;
  /** The job's own folder: HOME/TMPDIR/TORCHINDUCTOR_CACHE_DIR default to sub-folders of it. */
  jobDir: string;
  /** Folders the sandbox user must be able to write (chowned to it when dropping privileges); default [jobDir]. */
  writablePaths?: string[];
  /** More folders to cover with an empty tmpfs inside the sandbox (e.g. the folder holding other jobs). */
  hidePaths?: string[];
  /** Paths the command needs that must stay visible (its interpreter, libraries, inputs). */
  visiblePaths?: string[];
  pidsLimit?: number;
  /** CPU quota in cores (cgroup only). */
  cpus?: number;
  nofile?: number;
  /** RLIMIT_AS is the fallback when cgroups are missing; CUDA maps huge virtual ranges, so GPU jobs turn it off. */
  allowRlimitAs?: boolean;
  /** Between SIGTERM and SIGKILL on timeout/abort. */
  killGraceMs?: number;
  tailChars?: number;
  /** Use these instead of probing (tests, or a caller that wants to weaken the sandbox on purpose). */
  capabilities?: SandboxCapabilities;
}

/** What was enforced for one run; recorded in the artifact manifest (build.sandbox). */
export type SandboxApplied = {
  network: 'none' | 'host';
  processes: 'private-pid-namespace' | 'host';
  user: 'nobody' | 'same';
  uid: number;
  gid: number;
  noNewPrivs: boolean;
  capabilities: 'none' | 'inherited';
  /** Folders replaced by an empty private tmpfs inside the sandbox. */
  privateMounts: string[];
  memoryLimit: 'cgroup-v1' | 'cgroup-v2' | 'rlimit-as' | 'none';
  memoryBytes: number | null;
  pidsLimit: number | null;
  cpuLimit: number | null;
  rlimits: { nofile: number | null; core: number | null; as: number | null };
  timeoutMs: number;
  killGraceMs: number;
  environment: 'clean';
  envKeys: string[];
  /** Degradations and warnings: what could not be enforced and why. */
  notes: string[];
};

export interface SandboxResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;
  oomKilled: boolean;
  stdoutTail: string;
  stderrTail: string;
  applied: SandboxApplied;
  /** Peak memory of the job (cgroup), when known. */
  memoryPeakBytes: number | null;
  durationMs: number;
  /** The job's cgroup folders (all removed by the time the result is returned unless listed in `applied.notes`). */
  cgroupPaths: string[];
}

interface SandboxPlan {
  applied: SandboxApplied;
  env: Record<string, string>;
  defaultDirs: string[];
  hide: string[];
  writable: string[];
  useNamespaces: boolean;
  pidAndMount: boolean;
  rlimitAs: number | null;
}

function isWithin(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Why uid/gid cannot reach `target` (an ancestor not searchable, or `target` lacking the `need` bits),
 * judging by owner and mode bits; null when it can (or when `target` does not exist).
 */
async function unreachableBy(target: string, uid: number, gid: number, need: number): Promise<string | null> {
  const parts = path.resolve(target).split(path.sep).filter(Boolean);
  let current = '/';
  for (let i = 0; i <= parts.length; i++) {
    let st;
    try {
      st = await stat(current);
    } catch {
      return null; // does not exist (yet): not our question
    }
    const isLast = i === parts.length;
    const want = isLast ? need : 0o1;
    const bits = st.uid === uid ? (st.mode >> 6) & 7 : st.gid === gid ? (st.mode >> 3) & 7 : st.mode & 7;
    if ((bits & want) !== want)
      return `${current} (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, owner ${st.uid})`;
    if (!isLast) current = path.join(current, parts[i]);
  }
  return null;
}

/**
 * What runSandboxed will enforce for these options on a host with these capabilities, without running
 * anything: the driver runner records it in the job file, so the manifest says how its artifact was built.
 */
export async function planSandbox(opts: RunSandboxedOptions, caps: SandboxCapabilities): Promise<SandboxApplied> {
  return (await makePlan(opts, caps)).applied;
}

async function makePlan(opts: RunSandboxedOptions, caps: SandboxCapabilities): Promise<SandboxPlan> {
  const notes = [...caps.notes];
  const jobDir = path.resolve(opts.jobDir);
  const cwd = path.resolve(opts.cwd);
  const drop = caps.dropTo;
  const ns = caps.namespaces;

  const defaults: Record<string, string> = {
    HOME: path.join(jobDir, 'home'),
    TMPDIR: path.join(jobDir, 'tmp'),
    TORCHINDUCTOR_CACHE_DIR: path.join(jobDir, 'cache'),
  };
  const env: Record<string, string> = { PATH: SANDBOX_PATH, LANG: 'C.UTF-8' };
  const defaultDirs: string[] = [];
  for (const [key, dir] of Object.entries(defaults)) {
    if (opts.env[key] === undefined) {
      env[key] = dir;
      defaultDirs.push(dir);
    }
  }
  Object.assign(env, opts.env);
  for (const key of ['HOME', 'TMPDIR', 'TORCHINDUCTOR_CACHE_DIR']) {
    if (!isWithin(path.resolve(env[key]), jobDir)) notes.push(`${key}=${env[key]} is outside the job folder`);
  }

  // Private tmpfs mounts: /tmp & co. plus what the caller hides, unless something the command needs lives
  // there (a venv under /tmp must stay reachable). The job folder itself is bound back in when hidden.
  const hide: string[] = [];
  if (ns?.pidAndMount && caps.tools.mount) {
    const argv0 = opts.argv[0] ?? '';
    const resolvedArgv0 = argv0.includes('/') ? path.resolve(cwd, argv0) : await findExecutable(argv0, env.PATH);
    const keep = [
      ...(isWithin(cwd, jobDir) ? [] : [cwd]),
      ...(resolvedArgv0 ? [resolvedArgv0, await realpath(resolvedArgv0).catch(() => resolvedArgv0)] : []),
      ...(env.PYTHONPATH ?? '').split(':').filter((p) => path.isAbsolute(p)),
      ...(opts.visiblePaths ?? []).map((p) => path.resolve(p)),
    ];
    const candidates = [...PRIVATE_TMP_PATHS, ...(opts.hidePaths ?? []).map((p) => path.resolve(p))];
    for (const candidate of [...new Set(candidates)].sort()) {
      if (candidate === '/' || isWithin(candidate, jobDir)) continue;
      if (hide.some((h) => isWithin(candidate, h))) continue; // an ancestor is hidden already
      const needed = keep.find((k) => isWithin(k, candidate));
      if (needed) {
        notes.push(`${candidate} stays shared with the host: ${needed} is needed by the job`);
        continue;
      }
      if (await isDirectory(candidate)) hide.push(candidate);
    }
  }

  if (drop) {
    for (const p of [jobDir, cwd]) {
      const blocked = await unreachableBy(path.dirname(p), drop.uid, drop.gid, 0o1);
      if (blocked) {
        throw new Error(`the sandbox user ${drop.user} cannot reach ${p}: ${blocked} blocks it`);
      }
    }
    const argv0 = opts.argv[0];
    if (argv0?.includes('/')) {
      const real = await realpath(path.resolve(cwd, argv0)).catch(() => null);
      const blocked = real ? await unreachableBy(real, drop.uid, drop.gid, 0o5) : null;
      if (blocked) {
        notes.push(
          `${argv0} resolves to ${real}, which ${drop.user} cannot read (${blocked}): ` +
            'an interpreter there will not find its own libraries',
        );
      }
    }
  }

  const cg = caps.cgroups;
  const pidsLimit = opts.pidsLimit ?? DEFAULT_PIDS_LIMIT;
  const cpuControllerAvailable = cg ? (cg.version === 1 ? cg.cpu !== null : cg.controllers.includes('cpu')) : false;
  const pidsControllerAvailable = cg ? (cg.version === 1 ? cg.pids !== null : cg.controllers.includes('pids')) : false;
  if (opts.cpus !== undefined && !cpuControllerAvailable)
    notes.push('no cgroup cpu controller: CPU quota not enforced');
  const rlimitAs = !cg && caps.tools.prlimit && opts.allowRlimitAs !== false ? opts.memoryBytes : null;
  if (!cg && rlimitAs === null) notes.push('memory is not limited (no cgroup, RLIMIT_AS not allowed or no prlimit)');
  const nofile = caps.tools.prlimit
    ? Math.min(opts.nofile ?? DEFAULT_NOFILE, caps.nofileHardLimit ?? Number.MAX_SAFE_INTEGER)
    : null;
  const hardening = caps.setprivHardening;

  const applied: SandboxApplied = {
    network: ns ? 'none' : 'host',
    processes: ns?.pidAndMount ? 'private-pid-namespace' : 'host',
    user: drop ? 'nobody' : 'same',
    uid: drop ? drop.uid : caps.uid,
    gid: drop ? drop.gid : caps.gid,
    noNewPrivs: hardening.includes('--no-new-privs'),
    capabilities:
      drop !== null || hardening.includes('--bounding-set=-all') || (!caps.isRoot && ns?.mode !== 'user')
        ? 'none'
        : 'inherited',
    privateMounts: hide,
    memoryLimit: cg ? (cg.version === 1 ? 'cgroup-v1' : 'cgroup-v2') : rlimitAs !== null ? 'rlimit-as' : 'none',
    memoryBytes: cg || rlimitAs !== null ? opts.memoryBytes : null,
    pidsLimit: pidsControllerAvailable ? pidsLimit : null,
    cpuLimit: opts.cpus !== undefined && cpuControllerAvailable ? opts.cpus : null,
    rlimits: { nofile, core: caps.tools.prlimit ? 0 : null, as: rlimitAs },
    timeoutMs: opts.timeoutMs,
    killGraceMs: opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
    environment: 'clean',
    envKeys: Object.keys(env).sort(),
    notes,
  };
  return {
    applied,
    env,
    defaultDirs,
    hide,
    writable: (opts.writablePaths ?? [jobDir]).map((p) => path.resolve(p)),
    useNamespaces: ns !== null,
    pidAndMount: ns?.pidAndMount === true && caps.tools.mount !== null,
    rlimitAs,
  };
}

/**
 * The exact command line and environment runSandboxed would spawn for these options and capabilities, minus
 * the first layer (joining the job's cgroups, which exist only while a job runs). Pure apart from the
 * filesystem checks planSandbox makes. It lets the sandbox be replayed where Node does not run:
 * bench/cuda/make-plan.ts records it for the GPU machine, whose runs showed CUDA working inside it.
 */
export async function sandboxCommandLine(
  opts: RunSandboxedOptions,
  caps: SandboxCapabilities,
): Promise<{ argv: string[]; env: Record<string, string>; applied: SandboxApplied }> {
  const plan = await makePlan(opts, caps);
  return { argv: buildCommand(opts, caps, plan, null), env: plan.env, applied: plan.applied };
}

// Host side, before any untrusted code runs: join the job's cgroups, then exec the rest of the chain.
// Args: cgroup.procs files…, "--", command…
const JOIN_CGROUPS_SCRIPT = [
  'while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do',
  '  echo "$$" > "$1" || { echo "kiln-sandbox: cannot join cgroup $1" >&2; exit 125; }',
  '  shift',
  'done',
  'shift',
  'exec "$@"',
].join('\n');

// Root inside the fresh mount namespace: cover each hidden folder with an empty tmpfs, bind the job folder
// back (through an fd opened before it was covered), then exec the privilege drop.
// Args: job-dir cwd tmpfs-size hidden-folders… "--" command…
const PRIVATE_MOUNTS_SCRIPT = [
  'set -e',
  'job=$1; cwd=$2; size=$3; shift 3',
  'exec 3<"$job"',
  'rebind=',
  'while [ "$1" != "--" ]; do',
  '  mount -t tmpfs -o "mode=1777,nosuid,nodev,size=$size" kiln-private "$1"',
  '  case "$job/" in "$1"/*) rebind=1 ;; esac',
  '  shift',
  'done',
  'shift',
  'if [ -n "$rebind" ]; then mkdir -p "$job"; mount --no-canonicalize --bind /proc/self/fd/3 "$job"; fi',
  'exec 3<&-',
  'cd "$cwd"',
  'exec "$@"',
].join('\n');

function buildCommand(
  opts: RunSandboxedOptions,
  caps: SandboxCapabilities,
  plan: SandboxPlan,
  cgroup: JobCgroup | null,
): string[] {
  const { tools } = caps;
  const chain: string[] = [];
  if (cgroup) chain.push(tools.sh, '-c', JOIN_CGROUPS_SCRIPT, 'kiln-sandbox', ...cgroup.procsFiles, '--');
  // If the worker dies, the sandbox dies with it (then --kill-child takes the namespace down).
  if (tools.setpriv) chain.push(tools.setpriv, '--pdeathsig', 'KILL', '--');
  if (tools.prlimit) {
    const { nofile, as } = plan.applied.rlimits;
    chain.push(tools.prlimit, `--nofile=${nofile}:${nofile}`, '--core=0:0');
    if (as !== null) chain.push(`--as=${as}:${as}`);
    chain.push('--');
  }
  if (plan.useNamespaces && tools.unshare && caps.namespaces) {
    chain.push(tools.unshare);
    if (caps.namespaces.mode === 'user') chain.push('--user', '--map-root-user');
    chain.push('--net', '--ipc', '--uts');
    if (caps.namespaces.pidAndMount) chain.push('--pid', '--fork', '--kill-child', '--mount', '--mount-proc');
    chain.push('--');
  }
  if (plan.pidAndMount) {
    const size = Math.max(16 * 1024 * 1024, opts.memoryBytes);
    chain.push(tools.sh, '-c', PRIVATE_MOUNTS_SCRIPT, 'kiln-sandbox-init');
    chain.push(path.resolve(opts.jobDir), path.resolve(opts.cwd), String(size), ...plan.hide, '--');
  }
  if (tools.setpriv) {
    const ids = caps.dropTo ? [`--reuid=${caps.dropTo.uid}`, `--regid=${caps.dropTo.gid}`, '--clear-groups'] : [];
    // Without a drop (not root), still shed capabilities (root inside a user namespace) and setuid gains.
    if (ids.length || caps.setprivHardening.length) chain.push(tools.setpriv, ...ids, ...caps.setprivHardening, '--');
  }
  chain.push(...opts.argv);
  return chain;
}

/** chown -R that never follows symlinks and never touches a file with other hard links (it belongs elsewhere too). */
async function chownTree(root: string, uid: number, gid: number): Promise<void> {
  const st = await lstat(root);
  if (st.isFile() && st.nlink > 1) return;
  await lchown(root, uid, gid);
  if (!st.isDirectory()) return;
  for (const entry of await readdir(root)) await chownTree(path.join(root, entry), uid, gid);
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

// util-linux ≤ 2.38 `unshare --fork` exits 1 with this message when its child died of SIGKILL
// (it tries to reset SIGKILL's handler to re-raise it). Seen on an OOM kill of the namespace's init.
const UNSHARE_SIGKILL_QUIRK = /(^|\n)unshare: sigprocmask unblock failed: Invalid argument\n?$/;

const RLIMIT_OOM_MARKERS = /MemoryError|std::bad_alloc|Cannot allocate memory|out of memory/;

/**
 * Runs `argv` sandboxed. Resolves when the process and everything it started are gone and the job's
 * cgroups are removed; rejects only when the sandbox could not be set up (nothing untrusted ran then).
 */
export async function runSandboxed(opts: RunSandboxedOptions): Promise<SandboxResult> {
  const caps = opts.capabilities ?? (await probeSandboxCapabilities());
  const plan = await makePlan(opts, caps);
  const { applied } = plan;
  const started = Date.now();
  const tailChars = opts.tailChars ?? DEFAULT_TAIL_CHARS;
  const notDone = (extra: Partial<SandboxResult>): SandboxResult => ({
    exitCode: null,
    signal: null,
    timedOut: false,
    cancelled: false,
    oomKilled: false,
    stdoutTail: '',
    stderrTail: '',
    applied,
    memoryPeakBytes: null,
    durationMs: Date.now() - started,
    cgroupPaths: [],
    ...extra,
  });
  if (opts.signal?.aborted) return notDone({ cancelled: true });

  await mkdir(opts.jobDir, { recursive: true });
  for (const dir of plan.defaultDirs) await mkdir(dir, { recursive: true });
  if (caps.dropTo) {
    for (const p of plan.writable) await chownTree(p, caps.dropTo.uid, caps.dropTo.gid);
  }

  let cgroup: JobCgroup | null = null;
  if (caps.cgroups) {
    const name = `kiln-${path.basename(opts.jobDir).replace(/[^A-Za-z0-9_.-]/g, '_')}-${randomBytes(4).toString('hex')}`;
    cgroup = await createJobCgroup(caps.cgroups, name, {
      memoryBytes: opts.memoryBytes,
      pidsLimit: applied.pidsLimit,
      cpus: applied.cpuLimit,
    });
  }

  const command = buildCommand(opts, caps, plan, cgroup);
  const stdout = new OutputCapture(opts.onStdoutLine, tailChars);
  const stderr = new OutputCapture(opts.onStderrLine, tailChars);
  let timedOut = false;
  let cancelled = false;
  let graceTimer: NodeJS.Timeout | undefined;
  let timeoutTimer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;

  try {
    const child = spawn(command[0], command.slice(1), {
      cwd: opts.cwd,
      env: plan.env,
      detached: true, // own process group: a timeout kills the whole tree, not just the first process
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (chunk: Buffer) => stdout.write(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.write(chunk));
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', reject);
    });

    const stop = (): void => {
      if (child.pid === undefined || graceTimer) return;
      killGroup(child.pid, 'SIGTERM');
      graceTimer = setTimeout(() => {
        if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
        if (cgroup) void killJobCgroup(cgroup);
      }, applied.killGraceMs);
    };
    timeoutTimer = setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutMs);
    onAbort = () => {
      cancelled = true;
      stop();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const exit = await exited;
    clearTimeout(timeoutTimer);
    clearTimeout(graceTimer);
    // Whatever the main process left behind (daemonised grandchildren holding our pipes) goes now.
    if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
    if (cgroup) await killJobCgroup(cgroup);
    const closedInTime = await Promise.race([closed.then(() => true), delay(2_000).then(() => false)]);
    if (!closedInTime) {
      child.stdout.destroy();
      child.stderr.destroy();
    }
    stdout.end();
    stderr.end();

    let stats: CgroupStats = { oomKills: 0, limitHits: 0, peakBytes: null };
    if (cgroup) stats = await readJobCgroupStats(cgroup);

    let exitCode = exit.code;
    let signal: string | null = exit.signal;
    let stderrTail = stderr.text();
    if (plan.pidAndMount && exitCode === 1 && UNSHARE_SIGKILL_QUIRK.test(stderrTail)) {
      exitCode = null;
      signal = 'SIGKILL';
      stderrTail = stderrTail.replace(UNSHARE_SIGKILL_QUIRK, '$1');
    }
    const failed = exitCode !== 0;
    let oomKilled = failed && stats.oomKills > 0;
    if (!oomKilled && failed && !cgroup && plan.rlimitAs !== null) {
      // Under RLIMIT_AS an allocation fails instead of a kill; the runtime says so on stderr.
      oomKilled = RLIMIT_OOM_MARKERS.test(stderrTail);
    }
    return {
      exitCode,
      signal,
      timedOut,
      cancelled: cancelled && !timedOut,
      oomKilled: oomKilled && !timedOut && !cancelled,
      stdoutTail: stdout.text(),
      stderrTail,
      applied,
      memoryPeakBytes: stats.peakBytes,
      durationMs: Date.now() - started,
      cgroupPaths: cgroup?.dirs ?? [],
    };
  } finally {
    clearTimeout(timeoutTimer);
    clearTimeout(graceTimer);
    if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
    if (cgroup) {
      const left = await removeJobCgroup(cgroup);
      if (left.length) applied.notes.push(`cgroup folders left behind: ${left.join(', ')}`);
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
