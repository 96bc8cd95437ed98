import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadKilnConfig } from '@kiln/config';
import { findTarget, recipeHash, sha256Hex, TARGETS } from '@kiln/targets';
import { compileJobSettings } from '../activities/compile-job-settings.js';
import { type DriverProgress, runCompileDriver } from './driver-runner.js';
import { buildableTargets, probeHost } from './host-probe.js';
import { requireFullSandbox } from './testing/require-sandbox.js';

// The REAL compile driver (python/driver) in the real sandbox with the worker's own job settings
// (compileJobSettings: KILN_PYTHON, the jobs folder under KILN_HOME, the limits): probe this host, check it can
// serve linux-x86_64-v3, then compile, ISA-check, verify and time .kiln/fixtures/mlp.pt2 (about a minute on a
// 2-core machine) — while ANOTHER build holds the host's timing lock and never lets go. Kept apart from the fast
// unit specs; run it with
//   node --import @swc-node/register/esm-register --test apps/worker/src/build-runner/driver-runner.real.spec.ts
// The interpreter (KILN_TEST_PYTHON, else KILN_PYTHON) needs torch 2.13.0+cpu and must be usable by nobody.
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const FIXTURES = process.env.KILN_FIXTURES_DIR ?? path.join(REPO, '.kiln', 'fixtures');
const MODEL = path.join(FIXTURES, 'mlp.pt2');

/** Another build on this host holding the timing lock exclusively (as a timing does) until killed. */
async function holdLockForever(lock: string): Promise<() => void> {
  const child = spawn('python3', [
    '-c',
    `import fcntl, os, time\nfd = os.open(${JSON.stringify(lock)}, os.O_RDONLY)\nfcntl.flock(fd, fcntl.LOCK_EX)\nprint("held", flush=True)\ntime.sleep(3600)`,
  ]);
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the lock holder exited (${code})`)));
  });
  return () => child.kill('SIGKILL');
}

describe('runCompileDriver with the real driver', () => {
  it(
    'builds, verifies and times mlp.pt2 for v3 in the sandbox, not stalled by a lock another build holds',
    {
      timeout: 600_000,
    },
    async (t) => {
      const host = await requireFullSandbox(t);
      assert.ok(existsSync(MODEL), `${MODEL} is missing (test/fixtures/make_models.py creates the fixture models)`);
      const config = loadKilnConfig();
      const scratch = await mkdtemp(path.join(os.tmpdir(), 'kiln-real-driver-'));
      await chmod(scratch, 0o755);
      const lock = path.join(scratch, 'timing.lock');
      await writeFile(lock, '', { mode: 0o644 });
      const settings = compileJobSettings(config, { timingLock: lock, host: host! });
      if (process.env.KILN_TEST_PYTHON) settings.pythonPath = process.env.KILN_TEST_PYTHON;

      const probe = await probeHost({ pythonPath: settings.pythonPath, sandboxCheck: false });
      const { buildable } = buildableTargets(probe, TARGETS, ['linux-x86_64-v3']);
      assert.deepEqual(
        buildable.map((b) => b.targetId),
        ['linux-x86_64-v3'],
        `this host cannot build v3: ${probe.problems.join('; ')}`,
      );

      const release = await holdLockForever(lock);
      const target = findTarget('linux-x86_64-v3')!;
      const progress: DriverProgress[] = [];
      try {
        const outcome = await runCompileDriver({
          ...settings,
          timeoutMs: 540_000,
          model: { file: MODEL },
          onProgress: (p) => progress.push(p),
          job: {
            targetId: target.id,
            recipe: target.recipe,
            recipeHash: recipeHash(target.recipe),
            modelContentHash: sha256Hex('mlp fixture (test)'),
            cacheKey: sha256Hex('mlp fixture (test) cache key'),
            requires: target.requires,
            host: { cpuModel: probe.cpuModel, x86Level: probe.x86Level, gpuName: null, driverVersion: null },
            // Small bounds, so the test shows them: each wait for the held lock gives up after 2 s.
            timing: { warmup: 2, runs: 10, maxSeconds: 30, lockWaitSeconds: 2 },
            seed: 0,
          },
        });
        assert.equal(outcome.ok, true, outcome.log);
        if (!outcome.ok) return;
        const { manifest } = outcome;
        t.diagnostic(
          `built in ${(outcome.durationMs / 1000).toFixed(1)} s; speedup ${manifest.timing.speedup}x measured ` +
            `${manifest.timing.lock} after ${manifest.timing.lockWaitS} s; ${outcome.log.match(/peak [\d.]+ \w+/)?.[0] ?? ''}`,
        );
        assert.equal(manifest.target, 'linux-x86_64-v3');
        assert.equal(manifest.requires.torch, target.recipe.toolchain.torch);
        assert.equal(manifest.isaCheck.passed, true);
        assert.equal(manifest.verification.passed, true);
        assert.ok(manifest.parts.some((p) => p.role === 'code'));
        // Neither the compile nor the timing waited for the other build beyond its bound; the manifest says so.
        assert.equal(manifest.timing.lock, 'contended');
        assert.match(outcome.log, /host lock .*another build still holds it .*going on without it \(compiling/);
        assert.match(outcome.log, /host lock .*another build still holds it .*going on without it \(timing/);
        // At least the job's 10 pairs per input size unless the 30 s bound cut the measurement short (then it says
        // so). `runs` is the first size's count; a later size can be the one cut short on a loaded host.
        assert.ok(manifest.timing.runs >= 1);
        const perInput = manifest.timing.perInput ?? [];
        assert.ok(perInput.length >= 1, 'the manifest has no per-input timing');
        assert.equal(manifest.timing.runs, perInput[0].samples);
        assert.equal(
          manifest.timing.truncated,
          perInput.some((p) => p.samples < 10),
        );
        // Measured beside a build that holds the lock: never a certain figure.
        assert.equal(manifest.timing.uncertain, true);
        assert.ok(manifest.timing.speedup > 0);
        // The worker's settings, recorded: the full sandbox.
        assert.deepEqual(manifest.build.sandbox, outcome.sandbox);
        assert.equal(outcome.sandbox?.mode, 'enforced');
        assert.equal(outcome.sandbox?.user, 'nobody');
        assert.equal(outcome.sandbox?.network, 'none');
        assert.equal(outcome.sandbox?.filesystem, 'allowlist');
        assert.ok(progress.some((p) => p.phase === 'compiling'));
        assert.equal(progress[progress.length - 1]?.phase, 'done');
        await outcome.cleanup();
      } finally {
        release();
        await rm(scratch, { recursive: true, force: true });
      }
    },
  );
});
