// Attacks on the build sandbox: a HOSTILE job (test/security/fixtures/hostile-driver, in place of the compile
// driver, the way a malicious model's code would run) through the worker's REAL job settings (compileJobSettings:
// the function the build activity and the worker's self-test use) on the real stack. It tries to read another
// job's model and another tenant's download, the worker's environment and files (.env, the signing key, .kiln
// data), /proc of other processes; to connect to PostgreSQL, Temporal and S3 (TCP and the unix socket); to write
// outside its folder; to gain privileges (a setuid-root binary, capabilities, namespaces, mounts); to exceed its
// memory and pids limits. Every attempt must fail, the build must end with a clean coded failure, and the host must
// stay healthy (its files unchanged, no process left, the API answering).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, cp, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { type KilnConfig, loadKilnConfig } from '@kiln/config';
import { ErrorCode } from '@kiln/contracts';
import { findTarget, recipeHash } from '@kiln/targets';
import {
  compileJobSettings,
  ensureTimingLock,
  protectedPaths,
} from '../../apps/worker/src/activities/compile-job-settings.js';
import { type DriverOutcome, runCompileDriver } from '../../apps/worker/src/build-runner/driver-runner.js';
import {
  createJobFolder,
  type JobFolder,
  type JobSandboxSettings,
} from '../../apps/worker/src/build-runner/job-folder.js';
import { missingWalls } from '../../apps/worker/src/build-runner/sandbox-plan.js';
import { probeSandboxHost } from '../../apps/worker/src/build-runner/sandbox-probe.js';
import { api, REPO_ROOT, startApi, type ApiProcess } from '../support/kiln-harness.js';

const HOSTILE_DRIVER = path.join(import.meta.dirname, 'fixtures', 'hostile-driver');
const SECRET = `kiln-secret-${randomUUID()}`;
const target = findTarget('linux-x86_64-v3')!;

let app: ApiProcess;
let config: KilnConfig;
let settings: JobSandboxSettings;
let hostileDir: string;
let otherJob: JobFolder;
let legacyDownload: string;
/** Host files a hostile job must not change: path → sha256 before the attacks (null: did not exist). */
const untouched = new Map<string, string | null>();

/** The worker's configuration: this worktree's .env under the process environment, as the services read it. */
function workerConfig(): KilnConfig {
  const envFile = path.join(REPO_ROOT, '.env');
  const fromFile = existsSync(envFile) ? parseEnv(spawnSync('cat', [envFile]).stdout.toString()) : {};
  return loadKilnConfig({ ...fromFile, ...process.env });
}

async function sha256(file: string): Promise<string | null> {
  try {
    return createHash('sha256')
      .update(await readFile(file))
      .digest('hex');
  } catch {
    return null;
  }
}

before(async () => {
  app = await startApi();
  config = workerConfig();
  const host = await probeSandboxHost({ bwrap: config.KILN_SANDBOX_BWRAP || undefined });
  const missing = missingWalls(host);
  assert.deepEqual(missing, [], 'the attack tests need the full build sandbox on this host (docs/security.md)');
  settings = compileJobSettings(config, { timingLock: await ensureTimingLock(config), host });

  // The hostile package, plus a setuid-root copy of id(1) next to it (visible to the job through its PYTHONPATH):
  // if setuid worked inside, it would print euid=0.
  hostileDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-hostile-'));
  await chmod(hostileDir, 0o755);
  await cp(HOSTILE_DRIVER, hostileDir, { recursive: true });
  await copyFile('/usr/bin/id', path.join(hostileDir, 'suid-id'));
  await chown(path.join(hostileDir, 'suid-id'), 0, 0);
  await chmod(path.join(hostileDir, 'suid-id'), 0o4755);

  // Another tenant's build, in flight next to the hostile one: its job folder and model.
  otherJob = await createJobFolder(settings.workRoot);
  await writeFile(otherJob.modelPath, `another tenant's model ${SECRET}`, { mode: 0o444 });
  // A download left where builds used to download models to (work/downloads, shared, default permissions).
  legacyDownload = path.join(config.workDir, 'downloads', 'other-tenant-build.pt2');
  await mkdir(path.dirname(legacyDownload), { recursive: true });
  await writeFile(legacyDownload, `another tenant's download ${SECRET}`);
  // The worker's environment holds a secret (as it holds S3 and database credentials).
  process.env.KILN_TEST_WORKER_SECRET = SECRET;

  for (const file of [
    path.join(REPO_ROOT, '.env'),
    config.resolvePath(config.KILN_SIGNING_KEY_FILE),
    otherJob.modelPath,
    legacyDownload,
    settings.pythonPath,
    '/etc/passwd',
  ]) {
    untouched.set(file, await sha256(file));
  }
});

after(async () => {
  delete process.env.KILN_TEST_WORKER_SECRET;
  await otherJob?.remove();
  if (legacyDownload) await rm(legacyDownload, { force: true });
  if (hostileDir) await rm(hostileDir, { recursive: true, force: true });
  await app?.close();
});

interface HostileRun {
  outcome: DriverOutcome;
  attack: Record<string, unknown> | null;
  /** Host uid owning the file the job wrote (out/attack.json): who the job really was outside its namespace. */
  attackFileOwner: number | null;
}

/** Runs the hostile driver as the worker runs a build: same settings, its plan as the job's "model". */
async function hostile(plan: Record<string, unknown>, extra: Partial<JobSandboxSettings> = {}): Promise<HostileRun> {
  const outcome = await runCompileDriver({
    ...settings,
    ...extra,
    env: { ...settings.env, PYTHONPATH: hostileDir },
    model: { write: (dest) => writeFile(dest, JSON.stringify(plan)) },
    job: {
      targetId: target.id,
      recipe: target.recipe,
      recipeHash: recipeHash(target.recipe),
      modelContentHash: 'a'.repeat(64),
      cacheKey: 'b'.repeat(64),
      requires: target.requires,
      host: { cpuModel: 'test', x86Level: 3, gpuName: null, driverVersion: null },
      timing: { warmup: 1, runs: 1 },
      seed: 0,
    },
  });
  const attackFile = path.join(outcome.jobDir, 'out', 'attack.json');
  const attack = existsSync(attackFile)
    ? (JSON.parse(await readFile(attackFile, 'utf8')) as Record<string, unknown>)
    : null;
  const attackFileOwner = existsSync(attackFile) ? (await lstat(attackFile)).uid : null;
  await outcome.cleanup();
  return { outcome, attack, attackFileOwner };
}

/** Processes on the host whose command line mentions `text`. */
async function processesWith(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) found.push(Number(entry));
  }
  return found;
}

async function assertHostHealthy(): Promise<void> {
  for (const [file, before] of untouched) assert.equal(await sha256(file), before, `${file} changed`);
  assert.deepEqual(await processesWith(hostileDir), [], 'no process of the hostile job is left');
  await api(app).get('/v1/health').expect(200);
}

function hostAddresses(): string[] {
  return [
    ...new Set(
      Object.values(os.networkInterfaces())
        .flat()
        .filter((a) => a?.family === 'IPv4')
        .map((a) => a.address),
    ),
  ];
}

function portOf(url: string, fallback: number): number {
  try {
    return Number(new URL(url).port || fallback);
  } catch {
    return fallback;
  }
}

describe('a hostile build job', () => {
  test('cannot read, reach, write or gain anything outside its folder, and fails with a code', async (t) => {
    const home = config.resolvePath(config.KILN_HOME);
    const hostTmpMarker = path.join('/tmp', `kiln-hostile-${randomUUID()}`);
    const ports = [
      5432,
      7233,
      8333,
      portOf(config.DATABASE_URL, 5432),
      Number(config.TEMPORAL_ADDRESS.split(':').pop()),
      portOf(config.S3_ENDPOINT, 80),
      config.KILN_API_PORT,
    ];
    const plan = {
      mode: 'escape',
      secrets: [SECRET],
      setuidBinary: path.join(hostileDir, 'suid-id'),
      read: [
        otherJob.modelPath,
        otherJob.dir,
        legacyDownload,
        path.dirname(legacyDownload),
        path.join(REPO_ROOT, '.env'),
        config.resolvePath(config.KILN_SIGNING_KEY_FILE),
        path.join(home, 'keys'),
        path.join(home, 'data'),
        path.join(home, 'logs'),
        path.join(REPO_ROOT, 'apps'),
        `/proc/${process.pid}/environ`,
        `/proc/${process.pid}/cmdline`,
        '/etc/shadow',
        '/root',
        '/home',
        '/var/run/postgresql',
        '/run/postgresql',
        ...protectedPaths(config),
      ],
      // Folders above what it may see: they show the way to its own files and nothing else.
      list: [REPO_ROOT, home, settings.workRoot],
      connect: [
        ...[...new Set(ports)].flatMap((port) => hostAddresses().map((host) => ({ host, port }))),
        { path: '/var/run/postgresql/.s.PGSQL.5432' },
        { path: `/var/run/postgresql/.s.PGSQL.${portOf(config.DATABASE_URL, 5432)}` },
        { path: '/run/postgresql/.s.PGSQL.5432' },
      ],
      write: [
        'evil-in-my-job-folder',
        path.join(otherJob.dir, 'evil'),
        path.join(otherJob.dir, 'tmp', 'evil'),
        path.join(settings.workRoot, 'evil'),
        path.join(path.dirname(settings.pythonPath), 'evil'),
        path.join(REPO_ROOT, '.env'),
        path.join(home, 'evil'),
        otherJob.modelPath,
        settings.pythonPath,
        '/etc/passwd',
        hostTmpMarker,
      ],
    };
    // A hung attempt ends at this timeout (COMPILE_TIMEOUT, and the test fails), never at the builds' 30 minutes.
    const { outcome, attack, attackFileOwner } = await hostile(plan, { timeoutMs: 180_000 });

    // A clean coded failure: the job's own code (non-retryable), its log, its sandbox recorded.
    assert.ok(!outcome.ok, outcome.log);
    assert.equal(outcome.code, ErrorCode.INVALID_MODEL, outcome.log);
    assert.equal(outcome.retryable, false);
    assert.equal(outcome.sandbox?.mode, 'enforced');
    assert.ok(attack, `the hostile job reported nothing: ${outcome.log}`);
    const report = attack as {
      reads: { path: string; ok: boolean; error?: string; secrets?: string[]; entries?: string[] }[];
      lists: { path: string; ok: boolean; error?: string; entries?: string[] }[];
      connects: { host?: string; port?: number; path?: string; ok: boolean; error?: string }[];
      writes: { path: string; ok: boolean; error?: string }[];
      proc: { count: number; processes: { pid: number; cmdline: unknown; environ: unknown }[] };
      privileges: Record<string, unknown> & {
        status: Record<string, string>;
        uid: unknown[];
        'setuid-binary': { rc?: number; stdout?: string; error?: string };
      };
      env: string[];
    };

    // Every attempt and its outcome, for the record (node --test prints diagnostics).
    const outcomeOf = (x: { ok: boolean; error?: string }): string => (x.ok ? 'SUCCEEDED' : (x.error ?? 'failed'));
    for (const r of report.reads) t.diagnostic(`read ${r.path}: ${outcomeOf(r)}`);
    for (const c of report.connects) t.diagnostic(`connect ${c.path ?? `${c.host}:${c.port}`}: ${outcomeOf(c)}`);
    for (const w of report.writes) t.diagnostic(`write ${w.path}: ${outcomeOf(w)}`);
    for (const [k, v] of Object.entries(report.privileges)) t.diagnostic(`privilege ${k}: ${JSON.stringify(v)}`);
    t.diagnostic(`/proc: ${report.proc.count} processes visible`);

    // Reads: nothing of the host exists for it (the /proc paths are its own pid namespace's).
    assert.equal(report.reads.length, plan.read.length);
    for (const r of report.reads) {
      assert.equal(r.ok, false, `read ${r.path}: ${JSON.stringify(r)}`);
      assert.equal(r.error, 'ENOENT', `read ${r.path}`);
    }
    const listed = Object.fromEntries(report.lists.map((l) => [l.path, l.entries ?? l.error]));
    assert.deepEqual(listed, {
      [REPO_ROOT]: ['.kiln', 'python'],
      [home]: ['venv', 'work'],
      [settings.workRoot]: [path.basename(outcome.jobDir)],
    });
    // /proc: only its own processes, none with the worker's secret.
    assert.ok(report.proc.count <= 4, `it sees ${report.proc.count} processes`);
    for (const p of report.proc.processes) {
      assert.ok(!JSON.stringify(p).includes(SECRET), `pid ${p.pid} exposes the secret`);
    }
    // Network: no host service (TCP on every address of this host, the PostgreSQL socket) answers.
    assert.equal(report.connects.length, plan.connect.length);
    for (const c of report.connects) assert.equal(c.ok, false, `connect ${c.path ?? `${c.host}:${c.port}`}`);
    // Writes: read-only everywhere but its own folders; its private /tmp never reaches the host's.
    for (const w of report.writes) {
      if (w.path === hostTmpMarker) continue;
      assert.equal(w.ok, false, `write ${w.path}`);
      assert.match(w.error ?? '', /^(EROFS|ENOENT|EACCES)$/, `write ${w.path}`);
    }
    assert.equal(existsSync(hostTmpMarker), false, 'its /tmp is private');
    assert.equal(existsSync(path.join(otherJob.dir, 'evil')), false);
    // Privileges: nobody (inside its namespace AND on the host: the file it wrote is nobody's), no capabilities,
    // no_new_privs; every escalation refused.
    assert.equal(attackFileOwner, 65534, 'the job is nobody on the host, not a root mapped into its namespace');
    const priv = report.privileges;
    assert.deepEqual(priv.uid, [65534, 65534, 65534, 65534, []]);
    for (const cap of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
      assert.equal(priv.status[cap], '0000000000000000', cap);
    }
    assert.equal(priv.status.NoNewPrivs, '1');
    for (const attempt of [
      'setuid0',
      'setgid0',
      'setgroups0',
      'chown-root',
      'raw-socket',
      'devmem',
      'kmsg',
      'sysrq',
      'core-pattern',
      'cgroup-fs',
      'unshare-user',
      'unshare-mount',
      'mount-tmpfs',
    ]) {
      assert.ok(typeof priv[attempt] === 'string' && priv[attempt] !== 'ok', `${attempt}: ${String(priv[attempt])}`);
    }
    // The setuid-root binary runs, but as nobody: no euid=0.
    const suid = priv['setuid-binary'];
    assert.equal(suid.rc, 0, JSON.stringify(suid));
    assert.match(suid.stdout ?? '', /^uid=65534\(nobody\) gid=65534\(nogroup\) groups=65534\(nogroup\)$/);
    assert.doesNotMatch(suid.stdout ?? '', /euid=0/);
    // Its environment is the worker's choice only.
    assert.ok(!report.env.includes('KILN_TEST_WORKER_SECRET'));
    assert.ok(!report.env.some((k) => ['DATABASE_URL', 'S3_SECRET_ACCESS_KEY', 'KILN_ADMIN_TOKEN'].includes(k)));

    await assertHostHealthy();
  });

  test('cannot take more memory than its limit: the kernel kills it, the build fails with COMPILE_OOM', async () => {
    // The worker's settings with a smaller limit (512 MiB instead of KILN_BUILD_MEMORY_MB): the same cgroup wall,
    // cheaper to hit on a shared machine. The job would stop by itself at 2 GiB ("survived") without the wall.
    const memoryBytes = 512 * 1024 * 1024;
    const { outcome, attack } = await hostile({ mode: 'memory', maxBytes: 4 * memoryBytes }, { memoryBytes });
    assert.ok(!outcome.ok);
    assert.equal(outcome.code, ErrorCode.COMPILE_OOM, outcome.log);
    assert.equal(outcome.retryable, false);
    assert.equal(attack?.survived, undefined, 'it never got past the limit');
    assert.equal(outcome.details?.memoryBytes, memoryBytes);
    const peak = outcome.details?.peakBytes as number | null;
    assert.ok(peak !== null && peak <= memoryBytes, `peak ${peak}`);
    await assertHostHealthy();
  });

  test('cannot fork past its pids limit; the fork bomb ends at the timeout with nothing left behind', async () => {
    // A smaller pids limit than KILN_BUILD_PIDS_LIMIT (64), same cgroup wall; without it all 256 forks succeed.
    const { outcome, attack } = await hostile(
      { mode: 'forkbomb', forks: 256 },
      { pidsLimit: 64, timeoutMs: 15_000, killGraceMs: 1_000 },
    );
    assert.ok(!outcome.ok);
    assert.equal(outcome.code, ErrorCode.COMPILE_TIMEOUT, outcome.log);
    assert.ok(attack, outcome.log);
    assert.equal(attack.error, 'EAGAIN');
    assert.ok((attack.forked as number) < 64, `forked ${String(attack.forked)}`);
    await assertHostHealthy();
  });
});
