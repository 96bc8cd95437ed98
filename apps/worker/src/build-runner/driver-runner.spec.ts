import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from '@kiln/contracts';
import { findTarget, recipeHash } from '@kiln/targets';
import { compileSchema } from '../../../../test/support/contract-vectors.js';
import {
  type DriverOutcome,
  type DriverProgress,
  INSECURE_LOG_PREFIX,
  parsePhaseEnd,
  parseProgress,
  runCompileDriver,
  scrubHostPaths,
} from './driver-runner.js';
import type { SandboxHost } from './sandbox-probe.js';
import { requireFullSandbox } from './testing/require-sandbox.js';

// The real driver needs torch and ~40 s per build; these tests use a fake `kiln_driver` package (fixtures/
// fake-driver) that speaks the same protocol, to check how every way a build can end is mapped.
const FAKE_DRIVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'fake-driver');
const PYTHON = '/usr/bin/python3';
const target = findTarget('linux-x86_64-v3')!;

let scratch: string;
let workRoot: string;
let modelPath: string;
before(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'kiln-driver-spec-'));
  await chmod(scratch, 0o755);
  workRoot = path.join(scratch, 'jobs');
  modelPath = path.join(scratch, 'model.pt2');
  await writeFile(modelPath, 'not really a pt2, but bytes to hash', { mode: 0o644 });
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function build(
  t: TestContext,
  mode: string,
  extra: Partial<Parameters<typeof runCompileDriver>[0]> = {},
): Promise<{ outcome: DriverOutcome; progress: DriverProgress[]; logLines: string[]; host: SandboxHost }> {
  const host = await requireFullSandbox(t);
  assert.ok(host);
  const progress: DriverProgress[] = [];
  const logLines: string[] = [];
  const outcome = await runCompileDriver({
    host,
    pythonPath: PYTHON,
    model: { file: modelPath },
    workRoot,
    timeoutMs: 4_000,
    memoryBytes: 256 * 1024 * 1024,
    killGraceMs: 200,
    env: { PYTHONPATH: FAKE_DRIVER, FAKE_DRIVER_MODE: mode },
    onProgress: (p) => progress.push(p),
    onLogLine: (l) => logLines.push(l),
    job: {
      targetId: target.id,
      recipe: target.recipe,
      recipeHash: recipeHash(target.recipe),
      modelContentHash: 'a'.repeat(64),
      cacheKey: 'b'.repeat(64),
      requires: target.requires,
      host: { cpuModel: 'Test CPU', x86Level: 4, gpuName: null, driverVersion: null },
      timing: { warmup: 1, runs: 3 },
      seed: 0,
    },
    ...extra,
  });
  return { outcome, progress, logLines, host };
}

function failure(outcome: DriverOutcome): Extract<DriverOutcome, { ok: false }> {
  assert.equal(outcome.ok, false, outcome.log);
  return outcome;
}

describe('runCompileDriver', () => {
  it('returns a verified manifest, its parts and the progress of a successful build', async (t) => {
    const { outcome, progress, logLines, host } = await build(t, 'success');
    assert.equal(outcome.ok, true, outcome.log);
    if (!outcome.ok) return;
    assert.deepEqual(
      progress.map((p) => p.phase),
      ['loading', 'compiling', 'done'],
    );
    assert.equal(typeof progress[0].elapsedS, 'number');
    assert.match(logLines.join('\n'), /fake-driver: mode success/);

    const { manifest, partsDir } = outcome;
    assert.equal(manifest.target, target.id);
    assert.equal(manifest.precision, 'fp32'); // the fake, like drivers before the field, wrote none
    assert.equal(manifest.parts.length, 2);
    for (const part of manifest.parts) {
      assert.equal((await stat(path.join(partsDir, part.sha256))).size, part.size);
    }
    // The weights part is the model's bytes: the driver could read the model placed in the job folder.
    const weights = manifest.parts.find((p) => p.role === 'weights')!;
    assert.equal(await readFile(path.join(partsDir, weights.sha256), 'utf8'), await readFile(modelPath, 'utf8'));

    // job.json carried the sandbox plan to the driver; the manifest ends up with what was enforced.
    const job = JSON.parse(await readFile(path.join(outcome.jobDir, 'job.json'), 'utf8')) as Record<string, unknown>;
    const jobSchema = compileSchema('driver-job');
    assert.ok(jobSchema(job), `job.json breaks driver-job.schema.json: ${JSON.stringify(jobSchema.errors)}`);
    const planned = job.sandbox as Record<string, unknown>;
    assert.equal(planned.timeoutMs, 4_000);
    assert.equal(planned.memoryBytes, 256 * 1024 * 1024);
    assert.equal(planned.mode, 'enforced');
    assert.deepEqual(manifest.build.sandbox, outcome.sandbox);
    assert.equal(manifest.build.sandbox.network, 'none');
    assert.equal(manifest.build.sandbox.mode, 'enforced');
    // The model and the job file are the only host files of the job folder it sees (read-only).
    const view = (manifest.build.sandbox.view as { readOnly: string[] }).readOnly;
    assert.ok(
      view.includes(path.join(outcome.jobDir, 'model.pt2')) && view.includes(path.join(outcome.jobDir, 'job.json')),
    );
    assert.ok(!view.some((p) => p === workRoot || p === outcome.jobDir));

    const saw = (manifest as unknown as { fakeDriverSaw: { uid: number; env: string[]; sysPath0: string } })
      .fakeDriverSaw;
    assert.equal(saw.uid, host.account!.uid);
    for (const key of ['TMPDIR', 'HOME', 'KILN_BUILD_DIR', 'PYTHONNOUSERSITE', 'PYTHONSAFEPATH']) {
      assert.ok(saw.env.includes(key), key);
    }
    assert.ok(!saw.env.includes('S3_SECRET_ACCESS_KEY'));
    // PYTHONSAFEPATH: the job folder (cwd) is not on sys.path, so it cannot shadow the driver.
    assert.notEqual(saw.sysPath0, outcome.jobDir);

    assert.match(outcome.log, /a stray line a library printed to stdout/);
    assert.match(outcome.log, /\[kiln\] the driver exited with code 0/);
    await outcome.cleanup();
    assert.equal(existsSync(outcome.jobDir), false);
    await outcome.cleanup(); // idempotent
  });

  it('places a code donor in the job folder, read-only and in the view, and names it in job.json', async (t) => {
    const donorSha = 'c'.repeat(64);
    const { outcome } = await build(t, 'success', {
      codeDonor: { sha256: donorSha, cacheKey: 'd'.repeat(64), write: (dest) => writeFile(dest, 'donor code') },
    });
    assert.equal(outcome.ok, true, outcome.log);
    if (!outcome.ok) return;
    const donorPath = path.join(outcome.jobDir, 'donor-code.zip');
    assert.equal(await readFile(donorPath, 'utf8'), 'donor code');
    assert.equal((await stat(donorPath)).mode & 0o777, 0o444);
    const job = JSON.parse(await readFile(path.join(outcome.jobDir, 'job.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(job.codeDonor, { codePart: 'donor-code.zip', sha256: donorSha, cacheKey: 'd'.repeat(64) });
    const jobSchema = compileSchema('driver-job');
    assert.ok(jobSchema(job), `job.json breaks driver-job.schema.json: ${JSON.stringify(jobSchema.errors)}`);
    const view = (outcome.manifest.build.sandbox.view as { readOnly: string[] }).readOnly;
    assert.ok(view.includes(donorPath), 'the sandbox hides the donor');
    await outcome.cleanup();
  });

  it('builds without the donor when it cannot be written (say, it failed its hash), and says so', async (t) => {
    const { outcome } = await build(t, 'success', {
      codeDonor: {
        sha256: 'c'.repeat(64),
        cacheKey: 'd'.repeat(64),
        write: async (dest) => {
          await writeFile(dest, 'half');
          throw new Error('the sha256 is not the one recorded');
        },
      },
    });
    assert.equal(outcome.ok, true, outcome.log);
    if (!outcome.ok) return;
    assert.equal(existsSync(path.join(outcome.jobDir, 'donor-code.zip')), false);
    const job = JSON.parse(await readFile(path.join(outcome.jobDir, 'job.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(job.codeDonor, undefined);
    assert.match(outcome.log, /\[kiln\] code donor cccccccccccc not used: the sha256 is not the one recorded/);
    await outcome.cleanup();
  });

  it('places an inductor cache in the job folder, read-only and in the view, and hands back the packed one', async (t) => {
    const offered = 'inductor cache bytes';
    const sha = createHash('sha256').update(offered).digest('hex');
    const { outcome } = await build(t, 'success', {
      inductorCache: { store: true, restore: { sha256: sha, write: (dest) => writeFile(dest, offered) } },
    });
    assert.equal(outcome.ok, true, outcome.log);
    if (!outcome.ok) return;
    const cachePath = path.join(outcome.jobDir, 'inductor-cache.zip');
    assert.equal((await stat(cachePath)).mode & 0o777, 0o444);
    const job = JSON.parse(await readFile(path.join(outcome.jobDir, 'job.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(job.inductorCache, { store: true, restore: { archive: 'inductor-cache.zip', sha256: sha } });
    const jobSchema = compileSchema('driver-job');
    assert.ok(jobSchema(job), `job.json breaks driver-job.schema.json: ${JSON.stringify(jobSchema.errors)}`);
    assert.ok((outcome.manifest.build.sandbox.view as { readOnly: string[] }).readOnly.includes(cachePath));
    assert.deepEqual(outcome.manifest.inductorCache?.restored, { sha256: sha, bytes: offered.length });
    const stored = outcome.manifest.inductorCache.stored!;
    assert.deepEqual(outcome.inductorCache, {
      path: path.join(outcome.jobDir, 'out', 'inductor-cache.zip'),
      sha256: stored.sha256,
      size: stored.bytes,
    });
    await outcome.cleanup();
  });

  it('builds without the inductor cache when it cannot be written, and says so', async (t) => {
    const { outcome } = await build(t, 'success', {
      inductorCache: {
        store: false,
        restore: {
          sha256: 'e'.repeat(64),
          write: async (dest) => {
            await writeFile(dest, 'half');
            throw new Error('the sha256 is not the one recorded');
          },
        },
      },
    });
    assert.equal(outcome.ok, true, outcome.log);
    if (!outcome.ok) return;
    assert.equal(existsSync(path.join(outcome.jobDir, 'inductor-cache.zip')), false);
    const job = JSON.parse(await readFile(path.join(outcome.jobDir, 'job.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(job.inductorCache, { store: false });
    assert.equal(outcome.inductorCache, null);
    assert.match(outcome.log, /\[kiln\] inductor cache eeeeeeeeeeee not used: the sha256 is not the one recorded/);
    await outcome.cleanup();
  });

  it('never hands back a packed cache that is a link out of the job (it could name any file the worker reads)', async (t) => {
    const { outcome } = await build(t, 'symlink-cache', { inductorCache: { store: true } });
    assert.equal(outcome.ok, true, outcome.log);
    if (!outcome.ok) return;
    assert.ok(outcome.manifest.inductorCache?.stored, 'the fake claims a stored cache');
    assert.equal(outcome.inductorCache, null);
    assert.match(outcome.log, /\[kiln\] inductor cache \w{12} not stored: .*symlink/);
    await outcome.cleanup();
  });

  it('maps exit 3 + error.json to a non-retryable error with the driver’s code and details', async (t) => {
    const { outcome } = await build(t, 'unsupported-op');
    const f = failure(outcome);
    assert.equal(f.code, ErrorCode.UNSUPPORTED_OP);
    assert.equal(f.retryable, false);
    assert.equal(f.message, 'inductor cannot lower aten.frobnicate');
    assert.deepEqual(f.details, { op: 'aten.frobnicate.default' });
    assert.match(f.log, /fake-driver: mode unsupported-op/);
    assert.match(f.log, /\[kiln\] UNSUPPORTED_OP: inductor cannot lower/);
    await f.cleanup();
  });

  it('maps another exit with error.json to that code, retryable (e.g. TOOLCHAIN_MISMATCH)', async (t) => {
    const f = failure((await build(t, 'toolchain-mismatch')).outcome);
    assert.equal(f.code, 'TOOLCHAIN_MISMATCH');
    assert.equal(f.retryable, true);
    await f.cleanup();
  });

  it('turns an unknown error code into DRIVER_CRASHED, keeping what the driver said', async (t) => {
    const f = failure((await build(t, 'unknown-code')).outcome);
    assert.equal(f.code, ErrorCode.DRIVER_CRASHED);
    assert.equal(f.details?.driverCode, 'SOMETHING_NEW');
    await f.cleanup();
  });

  it('maps a crash without error.json to DRIVER_CRASHED, retryable', async (t) => {
    const crash = failure((await build(t, 'crash')).outcome);
    assert.equal(crash.code, ErrorCode.DRIVER_CRASHED);
    assert.equal(crash.retryable, true);
    assert.match(crash.message, /exited with code 1: fake-driver: Traceback/);
    await crash.cleanup();

    const segv = failure((await build(t, 'segfault')).outcome);
    assert.equal(segv.code, ErrorCode.DRIVER_CRASHED);
    assert.match(segv.message, /killed by SIGSEGV/);
    await segv.cleanup();
  });

  it('maps a timeout to COMPILE_TIMEOUT (not retryable)', async (t) => {
    const f = failure((await build(t, 'sleep', { timeoutMs: 600 })).outcome);
    assert.equal(f.code, ErrorCode.COMPILE_TIMEOUT);
    assert.equal(f.retryable, false);
    assert.equal(f.details?.timeoutMs, 600);
    await f.cleanup();
  });

  it('maps the memory limit to COMPILE_OOM (not retryable)', async (t) => {
    const f = failure((await build(t, 'oom', { memoryBytes: 128 * 1024 * 1024 })).outcome);
    assert.equal(f.code, ErrorCode.COMPILE_OOM, f.log);
    assert.equal(f.retryable, false);
    assert.match(f.message, /memory limit of 128 MiB/);
    await f.cleanup();
  });

  it('maps an abort to CANCELLED', async (t) => {
    const controller = new AbortController();
    const pending = build(t, 'sleep', { signal: controller.signal });
    setTimeout(() => controller.abort(), 300);
    const f = failure((await pending).outcome);
    assert.equal(f.code, ErrorCode.CANCELLED);
    await f.cleanup();
  });

  it('rejects output it cannot trust: bad hashes, symlinks, another job’s manifest, no manifest', async (t) => {
    for (const [mode, why] of [
      ['bad-hash', /content hashes to/],
      ['symlink-part', /is a symlink/],
      ['wrong-key', /manifest cacheKey is "someone-elses-key"/],
      ['no-manifest', /no out\/manifest.json/],
      ['wrong-precision', /manifest precision is "bf16", the recipe says fp32/],
      ['lower-level', /manifest requires x86-64-v2, below the target's v3/],
    ] as const) {
      const f = failure((await build(t, mode)).outcome);
      assert.equal(f.code, ErrorCode.DRIVER_CRASHED, mode);
      assert.match(f.message, why, mode);
      await f.cleanup();
    }
  });

  it('never reads error.json through a symlink (it could point at any file the worker can read)', async (t) => {
    const f = failure((await build(t, 'symlink-error')).outcome);
    assert.equal(f.code, ErrorCode.DRIVER_CRASHED);
    assert.equal(f.details?.errorJson, 'error.json is a symlink');
    assert.doesNotMatch(JSON.stringify(f), /root:x:0:0/);
    await f.cleanup();
  });

  it('returns a retryable failure, not an exception, when the job cannot be prepared', async (t) => {
    const f = failure((await build(t, 'success', { model: { file: path.join(scratch, 'missing.pt2') } })).outcome);
    assert.equal(f.code, ErrorCode.DRIVER_CRASHED);
    assert.equal(f.retryable, true);
    assert.match(f.message, /could not prepare the build/);
    await f.cleanup();
  });

  it('writes the model straight into the build’s own job folder (no shared downloads folder), read-only', async (t) => {
    let dest = '';
    const { outcome } = await build(t, 'success', {
      model: {
        write: async (to) => {
          dest = to;
          await writeFile(to, 'downloaded model bytes', { mode: 0o600 });
        },
      },
    });
    assert.equal(outcome.ok, true, outcome.log);
    assert.equal(dest, path.join(outcome.jobDir, 'model.pt2'));
    assert.equal((await stat(dest)).mode & 0o777, 0o444);
    assert.deepEqual(await readdir(workRoot), [path.basename(outcome.jobDir)]);
    await outcome.cleanup();
  });

  it('runs nothing and answers SANDBOX_UNAVAILABLE (retryable) when a wall is missing', async (t) => {
    const host = await requireFullSandbox(t);
    const { outcome } = await build(t, 'success', { host: { ...host!, cgroups: null } });
    const f = failure(outcome);
    assert.equal(f.code, ErrorCode.SANDBOX_UNAVAILABLE);
    assert.equal(f.retryable, true);
    assert.deepEqual(
      (f.details?.missing as { wall: string }[]).map((m) => m.wall),
      ['memory-limit', 'pids-limit'],
    );
    assert.equal(f.sandbox, null, 'the driver never started');
    await f.cleanup();
  });

  it('with KILN_SANDBOX=insecure-local marks every log line and records the mode in the manifest', async (t) => {
    const host = await requireFullSandbox(t);
    const { outcome, logLines } = await build(t, 'success', {
      host: { ...host!, cgroups: null },
      insecureLocal: true,
    });
    assert.equal(outcome.ok, true, outcome.log);
    if (!outcome.ok) return;
    assert.equal(outcome.manifest.build.sandbox.mode, 'insecure-local');
    assert.deepEqual(
      (outcome.manifest.build.sandbox.missing as { wall: string }[]).map((m) => m.wall),
      ['memory-limit', 'pids-limit'],
    );
    const lines = outcome.log.trimEnd().split('\n');
    assert.ok(lines.length > 3);
    for (const line of lines) assert.ok(line.startsWith(INSECURE_LOG_PREFIX), line);
    assert.match(outcome.log, /INSECURE: built without memory-limit/);
    for (const line of logLines) assert.ok(line.startsWith(INSECURE_LOG_PREFIX), line);
    await outcome.cleanup();
  });

  it('leaves no job folders behind once cleaned up', async () => {
    assert.deepEqual(await readdir(workRoot), []);
  });
});

describe('parseProgress', () => {
  it('accepts phase events and ignores everything else', () => {
    assert.deepEqual(parseProgress('{"event":"phase","phase":"compiling","message":"m","elapsedS":1.5}'), {
      phase: 'compiling',
      message: 'm',
      elapsedS: 1.5,
    });
    assert.equal(parseProgress('{"event":"other"}'), null);
    assert.equal(parseProgress('{not json'), null);
    assert.equal(parseProgress('plain text'), null);
  });

  it('reads the start time and traceparent of a phase, and its end (phase_end)', () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    assert.deepEqual(
      parseProgress(
        `{"event":"phase","phase":"timing","message":"m","elapsedS":2,"at":1760000000.5,"traceparent":"${tp}"}`,
      ),
      { phase: 'timing', message: 'm', elapsedS: 2, at: 1760000000.5, traceparent: tp },
    );
    assert.deepEqual(
      parsePhaseEnd(
        `{"event":"phase_end","phase":"compiling","at":1760000001,"ok":false,"errorCode":"COMPILE_FAILED"}`,
      ),
      { phase: 'compiling', at: 1760000001, ok: false, errorCode: 'COMPILE_FAILED' },
    );
    assert.equal(parsePhaseEnd('{"event":"phase_end","phase":"compiling","ok":true}'), null); // no time: no span
    assert.equal(parsePhaseEnd('{"event":"phase","phase":"compiling","at":1}'), null);
    assert.equal(parseProgress('{"event":"phase_end","phase":"compiling","at":1,"ok":true}'), null);
  });
});

describe('scrubHostPaths', () => {
  it('names the host paths a tenant reads in its build log, and only whole paths', () => {
    const paths: [string, string][] = [
      ['/srv/kiln/.kiln/work/job-abc', '<job>'],
      ['/srv/kiln/.kiln/venv', '<venv>'],
      ['/srv/kiln', '<kiln>'],
    ];
    const log = [
      'File "/srv/kiln/.kiln/venv/lib/python3.11/site-packages/torch/_inductor/compile.py", line 3',
      'wrote /srv/kiln/.kiln/work/job-abc/out/manifest.json',
      'driver at /srv/kiln/python/driver; not ours: /srv/kiln2/x and /srv/kiln-old/y',
    ].join('\n');
    assert.equal(
      scrubHostPaths(log, paths),
      [
        'File "<venv>/lib/python3.11/site-packages/torch/_inductor/compile.py", line 3',
        'wrote <job>/out/manifest.json',
        'driver at <kiln>/python/driver; not ours: /srv/kiln2/x and /srv/kiln-old/y',
      ].join('\n'),
    );
  });
});
