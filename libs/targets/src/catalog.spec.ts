import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  AARCH64_TARGETS,
  AARCH64_TORCH_BUILD,
  CPU_TARGETS,
  CPU_TORCH_BUILD,
  CUDA_TARGETS,
  findTarget,
  recipeHash,
  recipePrecision,
  smName,
  TARGETS,
} from './catalog.js';

const manifest = (name: string): { target: string; recipeHash: string; precision?: string } =>
  JSON.parse(readFileSync(new URL(`../../../test/fixtures/manifests/${name}.json`, import.meta.url), 'utf8')) as {
    target: string;
    recipeHash: string;
  };

describe('target catalog', () => {
  it('has unique ids, and each recipe names its own target', () => {
    assert.equal(new Set(TARGETS.map((t) => t.id)).size, TARGETS.length);
    for (const t of TARGETS) assert.equal(t.recipe.targetId, t.id);
    assert.deepEqual(
      TARGETS.map((t) => t.id),
      [
        'linux-x86_64-v2',
        'linux-x86_64-v3',
        'linux-x86_64-v4',
        'linux-x86_64-cuda-sm90',
        'linux-x86_64-cuda-sm90-bf16',
        'linux-aarch64',
      ],
    );
  });

  it('linux-aarch64: cross-built on x86 (NEON, armv8-a, no SVE) against the aarch64 torch, requires aarch64', () => {
    const [arm] = AARCH64_TARGETS;
    assert.deepEqual(arm.requires, { os: 'linux', arch: 'aarch64', x86Level: null, computeCapability: null });
    assert.equal(arm.recipe.device, 'cpu');
    assert.deepEqual(arm.recipe.toolchain, { torch: CPU_TORCH_BUILD, cxx: 'aarch64-linux-gnu-g++' });
    assert.equal(arm.recipe.cross?.arch, 'aarch64');
    assert.equal(arm.recipe.cross?.buildArch, 'x86_64');
    assert.equal(arm.recipe.cross?.targetTorch, AARCH64_TORCH_BUILD);
    assert.equal(arm.recipe.inductorConfigs['cpp.march'], 'armv8-a');
    assert.equal(arm.recipe.inductorConfigs['cpp.simdlen'], 128);
    assert.equal(arm.recipe.inductorConfigs.freezing, true);
    assert.deepEqual(arm.recipe.forbiddenRegisters, ['sve']);
    for (const t of [...CPU_TARGETS, ...CUDA_TARGETS]) assert.equal(t.recipe.cross, undefined, t.id);
  });

  it('leaves the CPU recipes (and so every existing cache key) as they were: hashes of real manifests', () => {
    for (const t of CPU_TARGETS) {
      assert.equal(recipeHash(t.recipe), manifest(`cpu/${t.id}`).recipeHash, t.id);
      assert.equal(t.recipe.precision, undefined);
      assert.equal(recipePrecision(t.recipe), 'fp32');
    }
  });

  it('sm90: a 9.0 GPU, the CUDA torch, g++, no cpp.march (torch 2.11 lacks it); the H100 manifests match it', () => {
    const [fp32, bf16] = CUDA_TARGETS;
    for (const t of CUDA_TARGETS) {
      assert.deepEqual(t.requires, { os: 'linux', arch: 'x86_64', x86Level: null, computeCapability: '9.0' });
      assert.equal(t.recipe.device, 'cuda');
      assert.deepEqual(t.recipe.toolchain, { torch: '2.11.0+cu130', cxx: 'g++' });
      assert.deepEqual(t.recipe.forbiddenRegisters, []);
      assert.equal('cpp.march' in t.recipe.inductorConfigs, false);
      assert.equal(t.recipe.inductorConfigs['aot_inductor.package_constants_on_disk_format'], 'binary_blob');
    }
    assert.equal(recipePrecision(fp32.recipe), 'fp32');
    assert.equal(bf16.recipe.precision, 'bf16');
    assert.ok(bf16.recipe.tolerance.atol > fp32.recipe.tolerance.atol);
    assert.equal(recipeHash(fp32.recipe), manifest('cuda-sm90/mlp-sm90').recipeHash);
    assert.equal(recipeHash(bf16.recipe), manifest('cuda-sm90/mlp-sm90-bf16').recipeHash);
    assert.equal(manifest('cuda-sm90/mlp-sm90-bf16').precision, 'bf16');
    assert.equal(findTarget('linux-x86_64-cuda-sm90-bf16'), bf16);
    assert.equal(smName('8.6'), 'sm86');
  });
});
