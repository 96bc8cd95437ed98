import path from 'node:path';
import {
  BWRAP_NAMESPACE_ARGS,
  dropPrivilegeArgs,
  SANDBOX_PATH,
  type SandboxHost,
  systemViewArgs,
} from './sandbox-probe.js';
import { isWithin, minimalRoots } from './sandbox-view.js';

/**
 * The plan of one sandboxed run (pure: no process, no file system): the command line to spawn, its environment,
 * and the record of what it enforces (it goes into the manifest as `build.sandbox`). Outermost first:
 *
 *   sh                      joins the job's cgroups (memory, pids, cpu) while still root — runSandboxed adds it
 *   └ prlimit               RLIMIT_NOFILE, RLIMIT_CORE=0
 *     └ setpriv             nobody:nogroup, no groups, no capabilities (bounding set empty), no_new_privs
 *       └ bwrap             as nobody: own user/pid/net/ipc/uts/cgroup namespaces, no nested user namespaces,
 *                           dies with the worker, new session, ALLOWLIST mount view (read-only toolchain, the
 *                           job's own files, its writable folders, fresh /proc, minimal /dev, private /tmp)
 *         └ argv
 *
 * Each part is a WALL. A build runs only when every wall holds (planSandbox throws SandboxUnavailableError
 * otherwise), unless the worker was started with the explicit opt-out KILN_SANDBOX=insecure-local: then the plan
 * keeps what this host allows, and the record says `mode: 'insecure-local'` and lists what is missing.
 *
 * bubblewrap runs as nobody, never as root: as root with --unshare-user the job's uid maps to host uid 0 (it
 * could read any root-owned 0600 file in its view, and its files are root's), and without a user namespace it
 * keeps uid 0 and the full bounding set (tried on this host; docs/decisions.md).
 */

/** Where a job sees its build folder (SandboxRequest.buildDir): the same path in every job, on every host. */
export const SANDBOX_BUILD_DIR = '/tmp/kiln-build';

export const SANDBOX_WALLS = [
  'network',
  'pid-namespace',
  'filesystem-allowlist',
  'user',
  'capabilities',
  'no-new-privs',
  'memory-limit',
  'pids-limit',
  'rlimit-core',
  'rlimit-nofile',
  'timeout',
  'clean-environment',
] as const;
export type SandboxWall = (typeof SANDBOX_WALLS)[number];

export interface MissingWall {
  wall: SandboxWall;
  why: string;
}

export type SandboxMode = 'enforced' | 'insecure-local';

export const DEFAULT_PIDS_LIMIT = 4096;
export const DEFAULT_NOFILE = 16_384;
export const DEFAULT_KILL_GRACE_MS = 5_000;
/** Hostname inside every sandbox (the host's own name is none of a job's business). */
export const SANDBOX_HOSTNAME = 'kiln-build';

export interface SandboxRequest {
  argv: string[];
  /** Working directory inside the sandbox (a path of the view). */
  cwd: string;
  /** The job's folder: its `.sandbox/` holds the passwd/group files the job sees as /etc/passwd and /etc/group. */
  jobDir: string;
  /** The job's whole environment besides PATH and LANG: nothing of the worker's own is passed. */
  env: Record<string, string>;
  timeoutMs: number;
  memoryBytes: number;
  pidsLimit?: number;
  /** CPU quota in cores (cgroup cpu controller), when wanted. */
  cpus?: number;
  nofile?: number;
  killGraceMs?: number;
  /** Host paths shown read-only at the same path: the toolchain (sandbox-view.ts) and the job's input files. */
  readOnly: string[];
  /** Host folders shown writable at the same path: the job's own scratch and output folders. */
  writable: string[];
  /**
   * One of the writable folders (or inside one), also shown writable at the fixed path SANDBOX_BUILD_DIR and named to the job
   * by KILN_BUILD_DIR: the driver compiles there, so the code never embeds the job folder's random name
   * (reproducible code parts). Without bubblewrap (insecure-local only) the job sees it at its host path.
   */
  buildDir?: string;
  /** Device nodes shown as they are (the GPU's /dev/nvidia*); /dev is otherwise a minimal fresh one. */
  devices?: string[];
  /** Host paths that must never be inside the view (keys, data, `.env`, …): a view containing one is refused. */
  protectedPaths?: string[];
  /** The explicit opt-out (KILN_SANDBOX=insecure-local): run with the walls this host has, and say so. */
  insecureLocal?: boolean;
}

/** What the sandbox enforced for one run: recorded in job.json and in the manifest (`build.sandbox`). */
export interface SandboxRecord {
  mode: SandboxMode;
  /** "bubblewrap 0.8.0"; null when the run went without it (insecure-local only). */
  tool: string | null;
  /** Walls that did not hold (always empty in mode `enforced`). */
  missing: MissingWall[];
  network: 'none' | 'host';
  processes: 'private-pid-namespace' | 'host';
  filesystem: 'allowlist' | 'host';
  user: 'nobody' | 'same';
  uid: number;
  gid: number;
  capabilities: 'none' | 'inherited';
  noNewPrivs: boolean;
  memoryLimit: 'cgroup-v1' | 'cgroup-v2' | 'none';
  memoryBytes: number | null;
  pidsLimit: number | null;
  cpuLimit: number | null;
  rlimits: { nofile: number | null; core: 0 | null };
  timeoutMs: number;
  killGraceMs: number;
  environment: 'clean';
  envKeys: string[];
  view: { readOnly: string[]; writable: string[]; devices: string[] };
  notes: string[];
}

export interface SandboxPlan {
  /** The command line, without the cgroup join (runSandboxed puts it in front). */
  argv: string[];
  env: Record<string, string>;
  record: SandboxRecord;
  /** Whether bwrap is in the chain (then its exit status 128+n means the job died of signal n). */
  bwrap: boolean;
}

/** The sandbox cannot hold in full and the worker did not opt out: nothing untrusted may run. */
export class SandboxUnavailableError extends Error {
  constructor(readonly missing: MissingWall[]) {
    super(`the build sandbox does not hold: ${missing.map((m) => `${m.wall} (${m.why})`).join('; ')}`);
    this.name = 'SandboxUnavailableError';
  }
}

/** Where runSandboxed writes the job's /etc/passwd and /etc/group (root-owned, read-only to the job). */
export function sandboxEtcDir(jobDir: string): string {
  return path.join(path.resolve(jobDir), '.sandbox');
}

/** Which walls this host cannot put up, and why (from the probe alone). */
export function missingWalls(host: SandboxHost): MissingWall[] {
  const missing: MissingWall[] = [];
  const bwrapWhy = !host.tools.bwrap
    ? 'bubblewrap (bwrap) is not installed'
    : 'bubblewrap cannot create its namespaces here (see the probe notes)';
  if (!host.tools.bwrap || !host.bwrapWorks) {
    for (const wall of ['network', 'pid-namespace', 'filesystem-allowlist'] as const)
      missing.push({ wall, why: bwrapWhy });
  }
  if (!host.account) {
    const why = host.isRoot ? 'setpriv cannot drop to nobody' : `the worker is not root (uid ${host.uid})`;
    missing.push({ wall: 'user', why });
    if (!host.tools.bwrap || !host.bwrapWorks) missing.push({ wall: 'capabilities', why });
  }
  if (!host.account && (!host.tools.bwrap || !host.bwrapWorks)) {
    missing.push({ wall: 'no-new-privs', why: 'neither setpriv as root nor bubblewrap is available' });
  }
  const cg = host.cgroups;
  if (!cg) {
    missing.push({ wall: 'memory-limit', why: 'no usable cgroup memory controller' });
    missing.push({ wall: 'pids-limit', why: 'no usable cgroup pids controller' });
  } else if (!(cg.version === 1 ? cg.pids !== null : cg.controllers.includes('pids'))) {
    missing.push({ wall: 'pids-limit', why: 'the cgroup pids controller is not available for job cgroups' });
  }
  if (!host.tools.prlimit) {
    missing.push({ wall: 'rlimit-core', why: 'prlimit is not installed' });
    missing.push({ wall: 'rlimit-nofile', why: 'prlimit is not installed' });
  }
  for (const failed of host.failedSelfTest ?? []) {
    const wall = SANDBOX_WALLS.find((w) => w === failed.wall);
    if (wall && !missing.some((m) => m.wall === wall)) {
      missing.push({ wall, why: `the self-test found it missing inside a job: ${failed.why}` });
    }
  }
  return missing;
}

/**
 * The plan for `req` on `host`. Throws SandboxUnavailableError when a wall is missing and the request did not opt
 * out, and an Error when the view would show a protected path (a toolchain folder that contains the keys).
 */
export function planSandbox(req: SandboxRequest, host: SandboxHost): SandboxPlan {
  const missing = missingWalls(host);
  if (missing.length > 0 && !req.insecureLocal) throw new SandboxUnavailableError(missing);
  if (!Number.isSafeInteger(req.memoryBytes) || req.memoryBytes < 16 * 1024 * 1024) {
    throw new Error(`memoryBytes ${req.memoryBytes} is not a usable memory limit (at least 16 MiB)`);
  }
  const notes = [...host.notes];
  const jobDir = path.resolve(req.jobDir);
  const cwd = path.resolve(req.cwd);

  const env: Record<string, string> = { PATH: SANDBOX_PATH, LANG: 'C.UTF-8', ...req.env };
  // Paths the system view shows already (the interpreter's /usr/lib/python3.11) need no bind of their own.
  const system = [...host.rootFolders, ...Object.keys(host.rootSymlinks)];
  const readOnly = minimalRoots(req.readOnly).filter((p) => !system.some((root) => isWithin(p, root)));
  const writable = minimalRoots(req.writable);
  const devices = [...new Set((req.devices ?? []).map((d) => path.resolve(d)))].sort();
  for (const p of [...readOnly, ...writable]) {
    const exposed = (req.protectedPaths ?? []).find((secret) => isWithin(path.resolve(secret), p));
    if (exposed) throw new Error(`the sandbox view would show ${exposed} (through ${p}): refusing to run`);
  }
  for (const w of writable) {
    if (!isWithin(w, jobDir)) throw new Error(`writable folder ${w} is outside the job folder ${jobDir}`);
  }
  const useBwrap = host.tools.bwrap !== null && host.bwrapWorks;
  const buildDir = req.buildDir === undefined ? undefined : path.resolve(req.buildDir);
  if (buildDir !== undefined) {
    // One of the writable folders: the job's own, created and handed to the job's user like them.
    if (!writable.some((w) => isWithin(buildDir, w))) {
      throw new Error(`build folder ${buildDir} is not one of the job's writable folders`);
    }
    env.KILN_BUILD_DIR = useBwrap ? SANDBOX_BUILD_DIR : buildDir;
  }
  for (const key of ['HOME', 'TMPDIR', 'TORCHINDUCTOR_CACHE_DIR']) {
    if (env[key] !== undefined && !writable.some((w) => isWithin(path.resolve(env[key]), w))) {
      notes.push(`${key}=${env[key]} is not writable inside the sandbox`);
    }
  }

  const drop = host.account !== null && host.tools.setpriv !== null;
  const cg = host.cgroups;
  const pidsAvailable = cg ? (cg.version === 1 ? cg.pids !== null : cg.controllers.includes('pids')) : false;
  const cpuAvailable = cg ? (cg.version === 1 ? cg.cpu !== null : cg.controllers.includes('cpu')) : false;
  if (req.cpus !== undefined && !cpuAvailable) notes.push('no cgroup cpu controller: CPU quota not enforced');
  const nofile = host.tools.prlimit
    ? Math.min(req.nofile ?? DEFAULT_NOFILE, host.nofileHardLimit ?? Number.MAX_SAFE_INTEGER)
    : null;
  const uid = drop ? host.account!.uid : host.uid;
  const gid = drop ? host.account!.gid : host.gid;

  const argv: string[] = [];
  if (host.tools.prlimit) argv.push(host.tools.prlimit, `--nofile=${nofile}:${nofile}`, '--core=0:0', '--');
  if (drop) argv.push(host.tools.setpriv!, ...dropPrivilegeArgs(host.account!), '--');
  if (useBwrap) {
    const etc = sandboxEtcDir(jobDir);
    argv.push(host.tools.bwrap!, ...BWRAP_NAMESPACE_ARGS, '--new-session', '--cap-drop', 'ALL');
    argv.push('--uid', String(uid), '--gid', String(gid), '--hostname', SANDBOX_HOSTNAME);
    argv.push(...systemViewArgs(host));
    // Fresh mounts first: the binds below may lie inside them (a job folder under /tmp).
    argv.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/dev/shm');
    for (const d of devices) argv.push('--dev-bind', d, d);
    argv.push('--tmpfs', '/tmp', '--tmpfs', '/var/tmp');
    argv.push('--ro-bind', path.join(etc, 'passwd'), '/etc/passwd', '--ro-bind', path.join(etc, 'group'), '/etc/group');
    for (const p of readOnly) argv.push('--ro-bind', p, p);
    for (const p of writable) argv.push('--bind', p, p);
    // Inside the fresh /tmp, so the mount point is the job's own and nothing else shows there.
    if (buildDir !== undefined) argv.push('--bind', buildDir, SANDBOX_BUILD_DIR);
    // The skeleton folders bubblewrap made for the binds above stay read-only: nothing to write outside the job's.
    argv.push('--remount-ro', '/', '--chdir', cwd, '--');
  }
  argv.push(...req.argv);

  // What holds: the tool is there AND the self-test did not find the wall missing.
  const held = (wall: SandboxWall): boolean => !missing.some((m) => m.wall === wall);
  const record: SandboxRecord = {
    mode: missing.length === 0 ? 'enforced' : 'insecure-local',
    tool: useBwrap ? (host.bwrapVersion ?? 'bubblewrap') : null,
    missing,
    network: useBwrap && held('network') ? 'none' : 'host',
    processes: useBwrap && held('pid-namespace') ? 'private-pid-namespace' : 'host',
    filesystem: useBwrap && held('filesystem-allowlist') ? 'allowlist' : 'host',
    user: drop && held('user') ? 'nobody' : 'same',
    uid,
    gid,
    capabilities: (drop || useBwrap || !host.isRoot) && held('capabilities') ? 'none' : 'inherited',
    noNewPrivs: (drop || useBwrap) && held('no-new-privs'),
    memoryLimit: cg && held('memory-limit') ? (cg.version === 1 ? 'cgroup-v1' : 'cgroup-v2') : 'none',
    memoryBytes: cg ? req.memoryBytes : null,
    pidsLimit: pidsAvailable ? (req.pidsLimit ?? DEFAULT_PIDS_LIMIT) : null,
    cpuLimit: req.cpus !== undefined && cpuAvailable ? req.cpus : null,
    rlimits: { nofile, core: host.tools.prlimit ? 0 : null },
    timeoutMs: req.timeoutMs,
    killGraceMs: req.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
    environment: 'clean',
    envKeys: Object.keys(env).sort(),
    view: useBwrap ? { readOnly, writable, devices } : { readOnly: ['/'], writable: ['/'], devices: ['/dev'] },
    notes,
  };
  return { argv, env, record, bwrap: useBwrap };
}
