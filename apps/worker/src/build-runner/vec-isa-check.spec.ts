import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadKilnConfig } from '@kiln/config';
import { compileJobSettings } from '../activities/compile-job-settings.js';
import { probeHost } from './host-probe.js';
import { requireFullSandbox } from './testing/require-sandbox.js';
import {
  keepVecIsaAnswer,
  keptVecIsaAnswer,
  runVecIsaCheck,
  type VecIsaAnswer,
  vecIsaKey,
  type VecIsaKeyParts,
} from './vec-isa-check.js';

const parts: VecIsaKeyParts = {
  pythonPath: '/srv/kiln/.kiln/venv/bin/python',
  torch: '2.13.0+cpu',
  cxx: '/usr/bin/g++',
  compilerVersion: 'g++ (Debian 12.2.0-14) 12.2.0',
  cpuFlags: ['AMD EPYC', 'avx2', 'avx512f'],
};
const answer: VecIsaAnswer = { cxx: '/usr/bin/g++', listed: ['avx512', 'avx2'], valid: ['avx512', 'avx2'] };

describe('the vector-ISA answer, kept per host and toolchain', () => {
  it('is keyed by everything it depends on, and by nothing else', () => {
    const key = vecIsaKey(parts);
    assert.equal(vecIsaKey({ ...parts, cpuFlags: [...parts.cpuFlags].reverse() }), key, 'flag order does not matter');
    const changed: Partial<VecIsaKeyParts>[] = [
      { pythonPath: '/opt/other/bin/python' },
      { torch: '2.14.1' },
      { cxx: '/usr/bin/g++-14' },
      { compilerVersion: 'g++ (Debian 14.2.0-1) 14.2.0' },
      { cpuFlags: ['AMD EPYC', 'avx2'] },
    ];
    for (const change of changed) assert.notEqual(vecIsaKey({ ...parts, ...change }), key, JSON.stringify(change));
  });

  it('is used only for its own key, and a damaged file is no answer', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-vec-isa-'));
    try {
      const file = path.join(dir, 'vec-isa', 'k.json');
      assert.equal(await keptVecIsaAnswer(file, 'k'), null, 'nothing kept yet');
      await keepVecIsaAnswer(file, 'k', answer);
      assert.deepEqual(await keptVecIsaAnswer(file, 'k'), answer);
      assert.equal(await keptVecIsaAnswer(file, 'another key'), null);
      for (const damaged of [
        '{"key":"k","answer":{"cxx":"g++","listed":[],"valid":[]}}', // a relative compiler
        '{"key":"k","answer":{"cxx":"/usr/bin/g++","listed":"avx2","valid":[]}}',
        '{"key":"k"',
      ]) {
        await writeFile(file, damaged);
        assert.equal(await keptVecIsaAnswer(file, 'k'), null, damaged);
      }
      await keepVecIsaAnswer(file, 'k', answer);
      assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { key: 'k', answer });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the check, run in the build sandbox as builds run', () => {
  it("answers with the worker's compiler: every ISA the CPU lists compiled and loaded; a missing compiler validates none", async (t) => {
    const host = await requireFullSandbox(t);
    if (!host) return;
    const config = loadKilnConfig();
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'kiln-vec-isa-run-'));
    await chmod(scratch, 0o755);
    try {
      const lock = path.join(scratch, 'timing.lock');
      await writeFile(lock, '', { mode: 0o644 });
      const settings = { ...compileJobSettings(config, { timingLock: lock, host }), workRoot: scratch };
      const probe = await probeHost({ pythonPath: settings.pythonPath, sandboxCheck: false });
      const cxx = probe.toolchain.compilers['g++']?.path;
      assert.ok(cxx, 'g++ is not on the sandbox PATH');
      if (probe.arch !== 'x86_64') return t.skip(`inductor's x86 vector ISAs: this host is ${probe.arch}`);

      const good = await runVecIsaCheck(settings, cxx);
      assert.equal(good.problem, null);
      assert.equal(good.answer!.cxx, cxx);
      // What the CPU lists depends on the machine (AVX-512 or not): whatever it is, the toolchain builds all of it.
      assert.deepEqual([...good.answer!.valid].sort(), [...good.answer!.listed].sort());
      if (probe.cpuFlags.includes('avx2')) assert.ok(good.answer!.listed.includes('avx2'), good.answer!.listed.join());

      const missing = await runVecIsaCheck(settings, path.join(scratch, 'no-such-g++'));
      assert.deepEqual(missing.answer!.valid, []);
      assert.deepEqual(missing.answer!.listed, good.answer!.listed);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
