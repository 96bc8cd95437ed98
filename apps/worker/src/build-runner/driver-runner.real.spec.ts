import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findTarget, recipeHash, sha256Hex, TARGETS } from '@kiln/targets';
import { type DriverProgress, runCompileDriver } from './driver-runner.js';
import { buildableTargets, probeHost } from './host-probe.js';

// The REAL compile driver (python/driver) in the real sandbox: probe this host, check it can serve
// linux-x86_64-v3, then compile, ISA-check, verify and time .kiln/fixtures/mlp.pt2 (~40 s on the 2-core dev
// machine). Kept apart from the fast unit specs; run it with
//   node --import @swc-node/register/esm-register --test apps/worker/src/build-runner/driver-runner.real.spec.ts
// The interpreter needs torch 2.13.0+cpu AND must be usable by the sandbox user (nobody): a venv whose base
// interpreter lives under /root (pyenv, 0700) is not, and the host probe then rejects every target.
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
// KILN_TEST_PYTHON, else the project's venv (KILN_PYTHON's default), else the experiment venv of the dev machine.
const PYTHON =
  process.env.KILN_TEST_PYTHON ??
  [path.join(REPO, '.kiln', 'venv', 'bin', 'python'), '/tmp/exp/venv/bin/python'].find((p) => existsSync(p)) ??
  'python3';
const DRIVER_ROOT = path.join(REPO, 'python', 'driver');
const MODEL = path.join(REPO, '.kiln', 'fixtures', 'mlp.pt2');

describe('runCompileDriver with the real driver', () => {
  it('builds, verifies and times mlp.pt2 for linux-x86_64-v3 inside the sandbox', { timeout: 300_000 }, async (t) => {
    assert.ok(existsSync(MODEL), `${MODEL} is missing (scripts create the fixture models)`);
    const probe = await probeHost({ pythonPath: PYTHON });
    const { buildable } = buildableTargets(probe, TARGETS, ['linux-x86_64-v3']);
    assert.deepEqual(
      buildable.map((b) => b.targetId),
      ['linux-x86_64-v3'],
      `this host cannot build v3: ${probe.problems.join('; ')}`,
    );

    const target = findTarget('linux-x86_64-v3')!;
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'kiln-real-driver-'));
    await chmod(scratch, 0o755);
    const progress: DriverProgress[] = [];
    try {
      const outcome = await runCompileDriver({
        pythonPath: PYTHON,
        modelPath: MODEL,
        workRoot: path.join(scratch, 'jobs'),
        timeoutMs: 280_000,
        memoryBytes: 8 * 1024 * 1024 * 1024,
        env: { PYTHONPATH: DRIVER_ROOT },
        onProgress: (p) => progress.push(p),
        job: {
          targetId: target.id,
          recipe: target.recipe,
          recipeHash: recipeHash(target.recipe),
          modelContentHash: sha256Hex('mlp fixture (test)'),
          cacheKey: sha256Hex('mlp fixture (test) cache key'),
          requires: target.requires,
          host: { cpuModel: probe.cpuModel, x86Level: probe.x86Level, gpuName: null, driverVersion: null },
          timing: { warmup: 2, runs: 10 },
          seed: 0,
        },
      });
      assert.equal(outcome.ok, true, outcome.log);
      if (!outcome.ok) return;
      const { manifest } = outcome;
      t.diagnostic(
        `built in ${(outcome.durationMs / 1000).toFixed(1)} s; sandbox ${JSON.stringify(outcome.sandbox)}; ` +
          `speedup ${manifest.timing.speedup}x; memory ${outcome.log.match(/peak [\d.]+ \w+/)?.[0] ?? 'peak unknown'}`,
      );
      assert.equal(manifest.target, 'linux-x86_64-v3');
      assert.equal(manifest.requires.torch, target.recipe.toolchain.torch);
      assert.equal(manifest.isaCheck.passed, true);
      assert.equal(manifest.verification.passed, true);
      assert.ok(manifest.parts.some((p) => p.role === 'code'));
      assert.deepEqual(manifest.build.sandbox, outcome.sandbox);
      assert.ok(outcome.sandbox);
      assert.ok(progress.some((p) => p.phase === 'compiling'));
      assert.equal(progress[progress.length - 1]?.phase, 'done');
      if (process.getuid?.() === 0) {
        assert.equal(outcome.sandbox.user, 'nobody');
        assert.equal(outcome.sandbox.network, 'none');
      }
      await outcome.cleanup();
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
