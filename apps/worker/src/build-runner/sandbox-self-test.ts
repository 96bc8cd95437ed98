import { createServer, type Server } from 'node:net';
import { lstat, readFile, readlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createJobFolder, jobSandboxRequest, type JobSandboxSettings } from './job-folder.js';
import {
  missingWalls,
  SANDBOX_WALLS,
  type SandboxRecord,
  type SandboxRequest,
  type SandboxWall,
} from './sandbox-plan.js';
import { probeSandboxHost, type SandboxHost } from './sandbox-probe.js';
import { runSandboxed, type SandboxResult } from './sandbox-run.js';
import { isWithin } from './sandbox-view.js';

/**
 * The build worker's gate: before it polls any build queue, it runs `python -m kiln_driver sandbox-check` INSIDE
 * the sandbox exactly as builds run (same settings, same job folder layout, same command chain) and checks every
 * wall from there: who the job is, its capabilities and no_new_privs, its namespaces, that the host's services
 * (and a listener the worker opens for the purpose) are unreachable, which files exist, that it cannot write
 * outside its folders, that the memory and pids limits kill and refuse, its rlimits, its environment, and that a
 * hung job is killed at its timeout. The probe only reports; `judgeSandboxCheck` (pure) decides here.
 *
 * Three runs: the walls with small memory and pids limits (so the limit checks are cheap), the toolchain with the
 * builds' own limits (torch imports in a subprocess; the GPU is visible on a GPU host), and the timeout.
 */

export type CheckName = SandboxWall | 'toolchain' | 'gpu';

export interface WallCheck {
  wall: CheckName;
  ok: boolean;
  detail: string;
}

export interface SandboxedToolchain {
  ok: boolean;
  python: string | null;
  /** torch.__version__ imported by a subprocess of sys.executable inside the sandbox. */
  torch: string | null;
  problem: string | null;
}

export interface SelfTestReport {
  /** Every wall holds (the GPU check only matters for CUDA queues, the toolchain check for every queue). */
  ok: boolean;
  checks: WallCheck[];
  failed: WallCheck[];
  /** The sandbox record of the toolchain run (what builds get), null when nothing could run. */
  record: SandboxRecord | null;
  toolchain: SandboxedToolchain;
}

export interface HostEndpoint {
  host: string;
  port: number;
  what: string;
}

export interface SelfTestOptions {
  /** What the build activity gives every job (compile-job-settings.ts): the self-test runs with exactly these. */
  settings: JobSandboxSettings;
  /** Services of this host a job must not reach (PostgreSQL, Temporal, S3, the API); a listener is added. */
  endpoints: HostEndpoint[];
  /** Unix sockets a job must not reach (the PostgreSQL socket: trust auth locally). */
  unixSockets: string[];
  /** Host paths that must not exist inside (besides the allowlist walk, which catches everything else). */
  hidden: string[];
  /** Check /dev/nvidia* and /proc/driver/nvidia too (a GPU host: settings.devices holds the nodes). */
  gpu?: boolean;
}

/** Limits of the walls run: small, so that the memory and fork checks cost little. */
export const SELF_TEST_MEMORY_BYTES = 512 * 1024 * 1024;
export const SELF_TEST_PIDS_LIMIT = 64;

const ZERO_CAPS = /^0+$/;

export async function runSandboxSelfTest(opts: SelfTestOptions): Promise<SelfTestReport> {
  const host = opts.settings.host ?? (await probeSandboxHost());
  const settings: JobSandboxSettings = { ...opts.settings, host };
  const checks: WallCheck[] = [];
  const missing = missingWalls(host);
  for (const m of missing) checks.push({ wall: m.wall, ok: false, detail: `cannot be put up: ${m.why}` });
  const noToolchain = (problem: string): SandboxedToolchain => ({ ok: false, python: null, torch: null, problem });
  if (missing.length > 0 && !settings.insecureLocal) {
    return finish(checks, null, noToolchain('the sandbox does not hold, so the toolchain was not tried in it'));
  }

  const listener = await listen();
  const endpoints = [...opts.endpoints, ...listenerEndpoints(listener)];
  try {
    const hostView = await hostFacts();
    // 1. The walls, with small limits.
    const walls = await checkRun(settings, {
      memoryBytes: SELF_TEST_MEMORY_BYTES,
      pidsLimit: SELF_TEST_PIDS_LIMIT,
      expect: (req) => ({
        connect: endpoints.map(({ host: h, port }) => ({ host: h, port })),
        unixSockets: opts.unixSockets,
        list: listingsFor(req, host),
        hidden: opts.hidden,
        writes: writeProbesFor(req),
        forkAttempts: SELF_TEST_PIDS_LIMIT * 2,
        memoryHogBytes: Math.round(SELF_TEST_MEMORY_BYTES * 1.5),
        ownerProbe: path.join(req.jobDir, 'out', OWNER_PROBE),
      }),
    });
    if (!walls.report) {
      checks.push({ wall: 'timeout', ok: false, detail: `the check did not report: ${walls.problem}` });
      for (const wall of SANDBOX_WALLS.filter((w) => w !== 'timeout' && !checks.some((c) => c.wall === w))) {
        checks.push({ wall, ok: false, detail: 'not checked: the sandbox check did not run' });
      }
      return finish(checks, walls.result?.record ?? null, noToolchain(walls.problem ?? 'no report'));
    }
    checks.push(
      ...judgeSandboxCheck(walls.report, {
        host,
        hostView,
        request: walls.request,
        result: walls.result!,
        endpoints,
        unixSockets: opts.unixSockets,
        hidden: opts.hidden,
        forkAttempts: SELF_TEST_PIDS_LIMIT * 2,
        ownerUid: walls.ownerUid,
      }).filter((c) => !checks.some((m) => m.wall === c.wall)),
    );

    // 2. The toolchain (and the GPU), with the limits builds get.
    const tool = await checkRun(settings, { expect: () => ({ importTorch: true, gpu: opts.gpu === true }) });
    const toolchain = judgeToolchain(tool.report, tool.problem);
    checks.push({
      wall: 'toolchain',
      ok: toolchain.ok,
      detail: toolchain.ok
        ? `python ${toolchain.python}, torch ${toolchain.torch} import inside the sandbox`
        : `${settings.pythonPath} cannot run the driver inside the sandbox: ${toolchain.problem}`,
    });
    if (opts.gpu) checks.push(judgeGpu(tool.report));

    // 3. The timeout: a job that hangs is killed, with everything it started.
    checks.push(await checkTimeout(settings));
    return finish(checks, tool.result?.record ?? walls.result!.record, toolchain);
  } finally {
    await new Promise((resolve) => listener.close(resolve));
  }
}

function finish(checks: WallCheck[], record: SandboxRecord | null, toolchain: SandboxedToolchain): SelfTestReport {
  const failed = checks.filter((c) => !c.ok);
  return { ok: failed.filter((c) => c.wall !== 'gpu').length === 0, checks, failed, record, toolchain };
}

/** A file the walls run writes into its out/ folder: its owner on the host is who the job really is. */
const OWNER_PROBE = '.owner-probe';

interface CheckRun {
  /** Host uid owning out/.owner-probe after the run (null when the job wrote none). */
  ownerUid: number | null;
  report: SandboxCheckReport | null;
  problem: string | null;
  result: SandboxResult | null;
  request: SandboxRequest;
}

async function checkRun(
  settings: JobSandboxSettings,
  run: { memoryBytes?: number; pidsLimit?: number; expect: (req: SandboxRequest) => Record<string, unknown> },
): Promise<CheckRun> {
  const folder = await createJobFolder(settings.workRoot);
  try {
    const request = await jobSandboxRequest(
      {
        ...settings,
        memoryBytes: run.memoryBytes ?? settings.memoryBytes,
        pidsLimit: run.pidsLimit ?? settings.pidsLimit,
        timeoutMs: Math.min(settings.timeoutMs, 300_000),
      },
      folder,
      ['-m', 'kiln_driver', 'sandbox-check', '--expect', folder.jobPath],
    );
    // The expectations go where a build's job.json goes (read-only inside).
    await writeFile(folder.jobPath, JSON.stringify(run.expect(request)), { mode: 0o444 });
    await writeFile(folder.modelPath, '', { mode: 0o444 });
    let report: SandboxCheckReport | null = null;
    const result = await runSandboxed({
      ...request,
      onStdoutLine: (line) => {
        try {
          const parsed = JSON.parse(line) as { event?: string; report?: SandboxCheckReport };
          if (parsed.event === 'sandbox-check' && parsed.report) report = parsed.report;
        } catch {
          // not ours
        }
      },
    });
    const ownerUid = await lstat(path.join(folder.outDir, OWNER_PROBE)).then(
      (st) => st.uid,
      () => null,
    );
    const problem = report
      ? null
      : `exit ${result.exitCode ?? result.signal}${result.timedOut ? ' (timed out)' : ''}: ` +
        `${lastLine(result.stderrTail) ?? 'no output'}`;
    return { ownerUid, report, problem, result, request };
  } catch (err) {
    return {
      ownerUid: null,
      report: null,
      problem: (err as Error).message,
      result: null,
      request: {
        argv: [],
        cwd: folder.dir,
        jobDir: folder.dir,
        env: {},
        timeoutMs: 0,
        memoryBytes: 0,
        readOnly: [],
        writable: [],
      },
    };
  } finally {
    await folder.remove();
  }
}

async function checkTimeout(settings: JobSandboxSettings): Promise<WallCheck> {
  const folder = await createJobFolder(settings.workRoot);
  try {
    const request = await jobSandboxRequest({ ...settings, timeoutMs: 3_000, killGraceMs: 1_000 }, folder, [
      '-m',
      'kiln_driver',
      'sandbox-check',
      '--hang',
    ]);
    await writeFile(folder.jobPath, '{}', { mode: 0o444 });
    await writeFile(folder.modelPath, '', { mode: 0o444 });
    const result = await runSandboxed(request);
    const ok = result.timedOut && result.exitCode !== 0;
    return {
      wall: 'timeout',
      ok,
      detail: ok
        ? `a hung job was killed at its ${request.timeoutMs} ms timeout (${result.signal ?? `exit ${result.exitCode}`})`
        : `a hung job was not stopped by its timeout (exit ${result.exitCode}, signal ${result.signal})`,
    };
  } catch (err) {
    return { wall: 'timeout', ok: false, detail: `the timeout check failed: ${(err as Error).message}` };
  } finally {
    await folder.remove();
  }
}

/** What `python -m kiln_driver sandbox-check` reports (python/driver/kiln_driver/sandbox_check.py). */
export interface SandboxCheckReport {
  python: string;
  executable: string;
  env: string[];
  identity: {
    uid: number;
    euid: number;
    gid: number;
    egid: number;
    groups: number[];
    status: Record<string, string>;
    setuid0: string;
    rlimits: { core: [number, number]; nofile: [number, number] };
  };
  namespaces: Record<string, string | null>;
  connections: { host?: string; port?: number; path?: string; connected: boolean; error: string | null }[];
  processes: { pid: number; cmdline: string }[];
  files: {
    listings: Record<string, string[] | string>;
    hidden: Record<string, string>;
    writes: Record<string, string>;
  };
  pids: { forked: number; error: string | null } | null;
  memory: { returncode: number | null; stdout: string; stderr: string } | null;
  torch: { torch: string | null; cuda: number | false | null; error: string | null } | null;
  gpu: { devices: string[]; nvidiactl: boolean; driver: string } | null;
}

/** This process's namespaces and command line, to compare with what the job reports. */
export interface HostFacts {
  namespaces: Record<string, string | null>;
  cmdline: string;
}

async function hostFacts(): Promise<HostFacts> {
  const namespaces: Record<string, string | null> = {};
  for (const ns of ['net', 'pid', 'mnt', 'ipc', 'uts', 'user', 'cgroup']) {
    namespaces[ns] = await readlink(`/proc/self/ns/${ns}`).catch(() => null);
  }
  const cmdline = (await readFile('/proc/self/cmdline', 'utf8').catch(() => '')).replace(/\0/g, ' ').trim();
  return { namespaces, cmdline };
}

export interface JudgeContext {
  host: SandboxHost;
  hostView: HostFacts;
  request: SandboxRequest;
  result: SandboxResult;
  endpoints: HostEndpoint[];
  unixSockets: string[];
  hidden: string[];
  forkAttempts: number;
  /** Host uid owning the file the job wrote; undefined when not checked. */
  ownerUid?: number | null;
}

/** Every wall, judged from what the job saw (and, for the limits, from the job cgroup's counters). Pure. */
export function judgeSandboxCheck(r: SandboxCheckReport, ctx: JudgeContext): WallCheck[] {
  const checks: WallCheck[] = [];
  const add = (wall: CheckName, problems: string[], okDetail: string): void => {
    checks.push({ wall, ok: problems.length === 0, detail: problems.length ? problems.join('; ') : okDetail });
  };
  const sameNs = (ns: string): boolean =>
    r.namespaces[ns] !== undefined && r.namespaces[ns] !== null && r.namespaces[ns] === ctx.hostView.namespaces[ns];
  const id = r.identity;
  const account = ctx.host.account;

  const userProblems: string[] = [];
  if (!account) userProblems.push('no account to drop to (the worker is not root)');
  else {
    if (id.uid !== account.uid || id.euid !== account.uid) userProblems.push(`runs as uid ${id.uid}/${id.euid}`);
    if (id.gid !== account.gid || id.egid !== account.gid) userProblems.push(`runs as gid ${id.gid}/${id.egid}`);
    const extra = id.groups.filter((g) => g !== account.gid);
    if (extra.length) userProblems.push(`keeps supplementary groups ${extra.join(',')}`);
  }
  if (id.setuid0 === 'ok') userProblems.push('setuid(0) succeeded');
  if (account && ctx.ownerUid !== undefined && ctx.ownerUid !== account.uid) {
    userProblems.push(
      ctx.ownerUid === null
        ? 'the file it wrote is missing on the host'
        : `the file it wrote belongs to host uid ${ctx.ownerUid} (its uid is mapped to another host user)`,
    );
  }
  add(
    'user',
    userProblems,
    `uid ${id.uid}, gid ${id.gid}, no supplementary groups, setuid(0) → ${id.setuid0}` +
      (ctx.ownerUid !== undefined ? `; its files belong to host uid ${ctx.ownerUid}` : ''),
  );

  const capProblems = ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']
    .filter((k) => !ZERO_CAPS.test(id.status[k] ?? ''))
    .map((k) => `${k} ${id.status[k] ?? 'unknown'}`);
  add('capabilities', capProblems, 'CapInh, CapPrm, CapEff, CapBnd and CapAmb are all empty');
  add(
    'no-new-privs',
    id.status.NoNewPrivs === '1' ? [] : [`NoNewPrivs is ${id.status.NoNewPrivs ?? 'unknown'}`],
    'NoNewPrivs 1 (setuid binaries and file capabilities grant nothing)',
  );

  const netProblems: string[] = [];
  if (sameNs('net')) netProblems.push(`the job shares the host's network namespace (${r.namespaces.net})`);
  for (const c of r.connections) {
    if (c.connected) netProblems.push(`reached ${c.path ?? `${c.host}:${c.port}`}`);
  }
  const tried = r.connections.length;
  add(
    'network',
    netProblems,
    `own network namespace; ${tried} host endpoints unreachable ` +
      `(${r.connections.map((c) => `${c.path ?? `${c.host}:${c.port}`} ${c.error}`).join(', ')})`,
  );

  const pidProblems: string[] = [];
  if (sameNs('pid')) pidProblems.push(`the job shares the host's pid namespace (${r.namespaces.pid})`);
  const worker = r.processes.find((p) => p.cmdline === ctx.hostView.cmdline);
  if (worker) pidProblems.push(`the worker process is visible as pid ${worker.pid}`);
  if (r.processes.length > 16) pidProblems.push(`${r.processes.length} processes are visible`);
  add('pid-namespace', pidProblems, `own pid namespace; sees ${r.processes.length} processes, all its own`);

  const fsProblems: string[] = [];
  if (sameNs('mnt')) fsProblems.push(`the job shares the host's mount namespace (${r.namespaces.mnt})`);
  const allowed = allowedChildren(ctx.request, ctx.host);
  for (const [dir, entries] of Object.entries(r.files.listings)) {
    if (typeof entries === 'string') {
      fsProblems.push(`cannot list ${dir} (${entries})`);
      continue;
    }
    const extra = entries.filter((e) => !(allowed.get(dir) ?? new Set()).has(e));
    if (extra.length) fsProblems.push(`${dir} shows ${extra.join(', ')} beyond the allowlist`);
  }
  for (const [p, outcome] of Object.entries(r.files.hidden)) {
    if (outcome !== 'ENOENT') fsProblems.push(`${p} is visible (${outcome})`);
  }
  const writable = ctx.request.writable.map((w) => path.resolve(w));
  for (const [p, outcome] of Object.entries(r.files.writes)) {
    const mayWrite = writable.some((w) => isWithin(p, w));
    if (mayWrite && outcome !== 'ok') fsProblems.push(`cannot write its own folder ${p} (${outcome})`);
    if (!mayWrite && outcome === 'ok') {
      const privateTmp = ['/tmp', '/var/tmp', '/dev/shm'].find((t) => isWithin(p, t));
      fsProblems.push(
        `could write ${p}` +
          (privateTmp ? ` (it lies in the sandbox's private ${privateTmp}: keep KILN_HOME out of ${privateTmp})` : ''),
      );
    }
  }
  add(
    'filesystem-allowlist',
    fsProblems,
    `own mount namespace; ${Object.keys(r.files.listings).length} folders show only the allowlist, ` +
      `${Object.keys(r.files.hidden).length} host paths do not exist, writes outside the job's folders fail ` +
      `(${Object.entries(r.files.writes)
        .map(([p, o]) => `${p} ${o}`)
        .join(', ')})`,
  );

  const stats = ctx.result.cgroupStats;
  const memProblems: string[] = [];
  if (!r.memory) memProblems.push('not tried');
  else if (r.memory.returncode !== -9) {
    memProblems.push(`a child allocating past the limit ended with ${r.memory.returncode} (${r.memory.stdout.trim()})`);
  }
  if (!stats || stats.oomKills < 1) memProblems.push('the job cgroup counted no OOM kill');
  add(
    'memory-limit',
    memProblems,
    `a child allocating 1.5x the ${ctx.request.memoryBytes} byte limit was OOM-killed (${ctx.result.record.memoryLimit})`,
  );

  const pidsProblems: string[] = [];
  if (!r.pids) pidsProblems.push('not tried');
  else {
    if (r.pids.error !== 'EAGAIN') pidsProblems.push(`fork ended with ${r.pids.error ?? 'no error'}`);
    if (r.pids.forked >= ctx.forkAttempts) pidsProblems.push(`${r.pids.forked} forks all succeeded`);
  }
  if (!stats || stats.pidsRefused < 1) pidsProblems.push('the job cgroup refused no fork');
  add(
    'pids-limit',
    pidsProblems,
    `fork refused with EAGAIN after ${r.pids?.forked} children (limit ${ctx.result.record.pidsLimit})`,
  );

  const core = id.rlimits.core;
  add('rlimit-core', core[0] === 0 && core[1] === 0 ? [] : [`RLIMIT_CORE is ${core.join(':')}`], 'RLIMIT_CORE 0:0');
  const nofile = id.rlimits.nofile;
  const wantNofile = ctx.result.record.rlimits.nofile;
  add(
    'rlimit-nofile',
    wantNofile !== null && nofile[0] === wantNofile && nofile[1] === wantNofile
      ? []
      : [`RLIMIT_NOFILE is ${nofile.join(':')}, wanted ${wantNofile}`],
    `RLIMIT_NOFILE ${nofile.join(':')}`,
  );

  // bubblewrap sets PWD to its --chdir folder; everything else is the worker's choice.
  const expectedEnv = new Set([...ctx.result.record.envKeys, ...(ctx.result.record.tool ? ['PWD'] : [])]);
  const extraEnv = r.env.filter((k) => !expectedEnv.has(k));
  add(
    'clean-environment',
    extraEnv.length ? [`unexpected variables ${extraEnv.join(', ')}`] : [],
    `only ${r.env.length} variables, all set by the worker`,
  );
  return checks;
}

function judgeToolchain(r: SandboxCheckReport | null, problem: string | null): SandboxedToolchain {
  if (!r) return { ok: false, python: null, torch: null, problem: problem ?? 'no report' };
  const torch = r.torch?.torch ?? null;
  return { ok: torch !== null, python: r.python, torch, problem: torch ? null : (r.torch?.error ?? 'torch not tried') };
}

function judgeGpu(r: SandboxCheckReport | null): WallCheck {
  const gpu = r?.gpu;
  if (!gpu) return { wall: 'gpu', ok: false, detail: 'the GPU was not checked (no report)' };
  const problems: string[] = [];
  if (!gpu.devices.includes('nvidiactl')) problems.push('/dev/nvidiactl is missing');
  if (!gpu.nvidiactl) problems.push('/dev/nvidiactl is not usable');
  if (gpu.driver.startsWith('error')) problems.push(`/proc/driver/nvidia/version: ${gpu.driver}`);
  if (r?.torch?.torch?.includes('+cu') && !r.torch.cuda) problems.push('torch sees no CUDA device');
  return {
    wall: 'gpu',
    ok: problems.length === 0,
    detail: problems.length
      ? problems.join('; ')
      : `devices ${gpu.devices.join(', ')}; ${gpu.driver}; torch sees ${String(r?.torch?.cuda)} GPU(s)`,
  };
}

/** Every path the view shows at its top (binds, fresh mounts, system folders, the job's passwd/group). */
export function viewRoots(req: SandboxRequest, host: SandboxHost): string[] {
  return [
    ...host.rootFolders,
    ...Object.keys(host.rootSymlinks),
    ...req.readOnly,
    ...req.writable,
    ...(req.devices ?? []),
    '/etc/passwd',
    '/etc/group',
    '/proc',
    '/dev',
    '/tmp',
    '/var/tmp',
  ].map((p) => path.resolve(p));
}

/** For each folder above a view root: the names it may show (the next component of each root below it). */
export function allowedChildren(req: SandboxRequest, host: SandboxHost): Map<string, Set<string>> {
  const roots = [...new Set(viewRoots(req, host))];
  const allowed = new Map<string, Set<string>>();
  for (const root of roots) {
    // A root inside another one (/dev/nvidia0 in the fresh /dev) is shown by that one.
    if (roots.some((r) => r !== root && isWithin(root, r))) continue;
    for (let child = root; child !== '/'; child = path.dirname(child)) {
      const parent = path.dirname(child);
      if (!allowed.has(parent)) allowed.set(parent, new Set());
      allowed.get(parent)!.add(path.basename(child));
    }
  }
  return allowed;
}

/** The folders the job lists: every folder above a view root that is not itself shown whole. */
function listingsFor(req: SandboxRequest, host: SandboxHost): string[] {
  return [...allowedChildren(req, host).keys()].sort();
}

/** Where the job tries to write: the system, the toolchain, its own folder (read-only) and one writable folder. */
function writeProbesFor(req: SandboxRequest): string[] {
  const jobDir = path.resolve(req.jobDir);
  const toolchain = req.readOnly.filter((p) => !isWithin(p, jobDir)).slice(0, 3);
  return ['/', '/etc', '/usr', jobDir, ...toolchain, ...req.writable.slice(-1)];
}

function listen(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    server.once('error', reject);
    server.listen(0, '0.0.0.0', () => resolve(server));
  });
}

/** The worker's own listener on every IPv4 address of this host: a job must reach none of them. */
function listenerEndpoints(server: Server): HostEndpoint[] {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const addresses = new Set(['127.0.0.1']);
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4') addresses.add(a.address);
  }
  return [...addresses].map((host) => ({ host, port, what: 'the self-test listener' }));
}

function lastLine(text: string): string | null {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.length ? lines[lines.length - 1] : null;
}
