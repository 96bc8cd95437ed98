import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { chmod, lchown, lstat, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  type CgroupStats,
  createJobCgroup,
  type JobCgroup,
  killJobCgroup,
  readJobCgroupStats,
  removeJobCgroup,
} from './cgroup-limits.js';
import { OutputCapture } from './output-capture.js';
import { planSandbox, sandboxEtcDir, type SandboxRecord, type SandboxRequest } from './sandbox-plan.js';
import { probeSandboxHost, type SandboxHost } from './sandbox-probe.js';
import { sandboxPasswd } from './sandbox-view.js';

/**
 * Runs an untrusted command (the compile driver loading a user's model) in the sandbox planned by
 * sandbox-plan.ts, in the job's cgroups, with a wall-clock timeout, and reports how it ended.
 *
 * Stopping (timeout, abort): SIGTERM to the process group (bubblewrap; --die-with-parent then SIGKILLs the job's
 * pid namespace), SIGKILL to the group and to every pid left in the job's cgroups after the grace period.
 */

const DEFAULT_TAIL_CHARS = 64 * 1024;

export interface RunSandboxedOptions extends SandboxRequest {
  signal?: AbortSignal;
  /** Called once per complete stdout/stderr line, as it arrives. */
  onStdoutLine?: (line: string) => void;
  onStderrLine?: (line: string) => void;
  /** How much of each stream to keep in the result (default 64 KiB). */
  tailChars?: number;
  /** The host as probed (default: probeSandboxHost()). */
  host?: SandboxHost;
  /** Called once the job runs, with its cgroup folders (tests read their limits there). */
  onStarted?: (info: { pid: number; cgroupDirs: string[] }) => void;
}

export interface SandboxResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;
  oomKilled: boolean;
  stdoutTail: string;
  stderrTail: string;
  record: SandboxRecord;
  /** Peak memory of the job (cgroup), when known. */
  memoryPeakBytes: number | null;
  /** cgroup counters of the run (OOM kills, memory limit hits, fork refusals, CPU throttling). */
  cgroupStats: CgroupStats | null;
  durationMs: number;
  /** The job's cgroup folders (all removed by the time the result is returned unless listed in `record.notes`). */
  cgroupPaths: string[];
}

/**
 * Runs `argv` sandboxed. Resolves when the process and everything it started are gone and the job's cgroups are
 * removed; rejects when the sandbox could not be set up (nothing untrusted ran then), in particular with
 * SandboxUnavailableError when a wall is missing and the request did not opt out.
 */
export async function runSandboxed(opts: RunSandboxedOptions): Promise<SandboxResult> {
  const host = opts.host ?? (await probeSandboxHost());
  const plan = planSandbox(opts, host);
  const { record } = plan;
  const started = Date.now();
  const tailChars = opts.tailChars ?? DEFAULT_TAIL_CHARS;
  if (opts.signal?.aborted) {
    return {
      exitCode: null,
      signal: null,
      timedOut: false,
      cancelled: true,
      oomKilled: false,
      stdoutTail: '',
      stderrTail: '',
      record,
      memoryPeakBytes: null,
      cgroupStats: null,
      durationMs: 0,
      cgroupPaths: [],
    };
  }

  await prepareJobFiles(opts, host);

  let cgroup: JobCgroup | null = null;
  if (host.cgroups) {
    const name = `kiln-${path.basename(opts.jobDir).replace(/[^A-Za-z0-9_.-]/g, '_')}-${randomBytes(4).toString('hex')}`;
    cgroup = await createJobCgroup(host.cgroups, name, {
      memoryBytes: opts.memoryBytes,
      pidsLimit: record.pidsLimit,
      cpus: record.cpuLimit,
    });
  }
  const command = cgroup
    ? [host.tools.sh, '-c', JOIN_CGROUPS_SCRIPT, 'kiln-sandbox', ...cgroup.procsFiles, '--', ...plan.argv]
    : plan.argv;

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
    if (child.pid !== undefined) opts.onStarted?.({ pid: child.pid, cgroupDirs: cgroup?.dirs ?? [] });

    const stop = (): void => {
      if (child.pid === undefined || graceTimer) return;
      killGroup(child.pid, 'SIGTERM');
      graceTimer = setTimeout(() => {
        if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
        if (cgroup) void killJobCgroup(cgroup);
      }, record.killGraceMs);
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

    const stats = cgroup ? await readJobCgroupStats(cgroup) : null;
    let exitCode = exit.code;
    let signal: string | null = exit.signal;
    // bubblewrap exits 128+n when the job died of signal n.
    if (plan.bwrap && exitCode !== null && exitCode > 128 && exitCode <= 128 + 64) {
      signal = signalName(exitCode - 128);
      exitCode = null;
    }
    const oomKilled = exitCode !== 0 && (stats?.oomKills ?? 0) > 0 && !timedOut && !cancelled;
    return {
      exitCode,
      signal,
      timedOut,
      cancelled: cancelled && !timedOut,
      oomKilled,
      stdoutTail: stdout.text(),
      stderrTail: stderr.text(),
      record,
      memoryPeakBytes: stats?.peakBytes ?? null,
      cgroupStats: stats,
      durationMs: Date.now() - started,
      cgroupPaths: cgroup?.dirs ?? [],
    };
  } finally {
    clearTimeout(timeoutTimer);
    clearTimeout(graceTimer);
    if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
    if (cgroup) {
      const left = await removeJobCgroup(cgroup);
      if (left.length) record.notes.push(`cgroup folders left behind: ${left.join(', ')}`);
    }
  }
}

/**
 * The files the plan binds: the job's /etc/passwd and /etc/group (root-owned, read-only), and the writable
 * folders, owned by the job's user (never following symlinks, never a file with other hard links).
 */
async function prepareJobFiles(opts: SandboxRequest, host: SandboxHost): Promise<void> {
  const etc = sandboxEtcDir(opts.jobDir);
  await mkdir(etc, { recursive: true, mode: 0o755 });
  const { passwd, group } = sandboxPasswd(host.account, host);
  await writeFile(path.join(etc, 'passwd'), passwd, { mode: 0o444 });
  await writeFile(path.join(etc, 'group'), group, { mode: 0o444 });
  for (const dir of opts.writable) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (host.account) await chownTree(dir, host.account.uid, host.account.gid);
    else await chmod(dir, 0o700);
  }
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

function signalName(n: number): string {
  const found = Object.entries(osConstants.signals).find(([, v]) => v === n);
  return found ? found[0] : `signal ${n}`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
