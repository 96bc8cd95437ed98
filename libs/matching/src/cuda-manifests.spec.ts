import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { ArtifactManifest } from '@kiln/contracts';
import { H100_BOX_FINGERPRINT } from './example-fingerprints.js';
import type { DeviceFingerprint } from './fingerprint.js';
import { type Candidate, resolveArtifact } from './match-artifacts.js';

// Real manifests from builds on an H100 (torch 2.11.0+cu130, driver 580.159.04; bench/cuda, bench/README.md):
// the MLP and CNN fixtures for linux-x86_64-cuda-sm90 and its bf16 variant. Next to them, the real CPU
// manifests of the x86 targets (torch 2.13.0+cpu).
const FIXTURES = new URL('../../../test/fixtures/manifests/', import.meta.url);

function manifest(dir: string, name: string): ArtifactManifest {
  return JSON.parse(readFileSync(new URL(`${dir}/${name}.json`, FIXTURES), 'utf8')) as ArtifactManifest;
}

function candidate(dir: string, name: string): Candidate {
  const m = manifest(dir, name);
  return { artifactId: name, targetId: m.target, manifest: m };
}

const mlp = candidate('cuda-sm90', 'mlp-sm90');
const mlpBf16 = candidate('cuda-sm90', 'mlp-sm90-bf16');
const cnn = candidate('cuda-sm90', 'cnn-sm90');
const cnnBf16 = candidate('cuda-sm90', 'cnn-sm90-bf16');
const cpu = readdirSync(new URL('cpu/', FIXTURES))
  .filter((f) => f.endsWith('.json'))
  .map((f) => candidate('cpu', f.replace(/\.json$/, '')));

/** An H100 box running the build's torch: 2.11.0+cu130 (CUDA 13.0), Ubuntu 24.04, an AVX-512 Xeon. */
const h100: DeviceFingerprint = { ...H100_BOX_FINGERPRINT, torch: { version: '2.11.0+cu130', cuda: '13.0' } };
const withGpu = (name: string, cc: string): DeviceFingerprint => ({
  ...h100,
  gpus: [{ name, computeCapability: cc, driverVersion: '580.159.04' }],
});

function reasonsOf(r: ReturnType<typeof resolveArtifact>, id: string): string[] {
  const entry = r.rejected.find((x) => x.artifactId === id);
  assert.ok(entry, `${id} should be rejected; rejected: ${JSON.stringify(r.rejected)}`);
  return entry.reasons;
}

describe('real sm90 manifests (built on an H100)', () => {
  it('say what they need: compute capability 9.0, the exact CUDA torch, x86-64-v4 host code, their precision', () => {
    for (const c of [mlp, mlpBf16, cnn, cnnBf16]) {
      const m = c.manifest as ArtifactManifest;
      assert.equal(m.requires.computeCapability, '9.0');
      assert.equal(m.requires.torch, '2.11.0+cu130');
      assert.equal(m.toolchain.cudaRuntime, '13.0');
      // torch 2.11 builds the wrapper .so with -march=native: the driver found AVX-512 in it and requires v4.
      assert.equal(m.requires.x86Level, 4);
      assert.equal(m.isaCheck.requiredX86Level, 4);
      assert.ok(m.isaCheck.counts.zmm > 0);
      assert.equal(m.verification.passed, true);
      assert.equal(m.verification.device, 'cuda');
      assert.equal(m.verification.tf32, false);
      assert.equal(m.build.gpu?.name, 'NVIDIA H100 80GB HBM3');
      assert.equal(m.build.gpu?.computeCapability, '9.0');
      assert.equal(m.build.gpu?.driverVersion, '580.159.04');
      assert.equal(m.build.sandbox.user, 'nobody');
      assert.equal(m.build.sandbox.network, 'none');
    }
    assert.equal(mlp.manifest.precision, 'fp32');
    assert.equal(mlpBf16.manifest.precision, 'bf16');
    assert.ok(mlp.manifest.verification.maxAbsError < 1e-6);
    assert.ok(mlpBf16.manifest.verification.maxAbsError > 1e-4); // really bf16, within its tolerance
  });

  it('picks the sm90 artifact for a 9.0 GPU with the same torch (2.11.0+cu130); the CPU ones need 2.13.0', () => {
    const r = resolveArtifact(h100, [mlp, ...cpu]);
    assert.equal(r.chosen?.artifactId, 'mlp-sm90');
    assert.equal(r.chosen?.targetId, 'linux-x86_64-cuda-sm90');
    const why = r.chosen?.reasons.join('\n') ?? '';
    assert.match(why, /GPU NVIDIA H100 80GB HBM3 has compute capability 9\.0/);
    assert.match(why, /torch 2\.11\.0 for CUDA 13\.0 matches the build \(2\.11\.0\+cu130\)/);
    assert.match(why, /x86-64-v4 ≤ this CPU's x86-64-v4/);
    assert.equal(r.rejected.length, cpu.length);
    for (const c of cpu) {
      assert.match(
        reasonsOf(r, c.artifactId).join('\n'),
        /built with torch 2\.13\.0 \(2\.13\.0\+cpu\); this device runs/,
      );
    }
  });

  it('refuses it on compute capability 8.0 (A100), with the reason', () => {
    const r = resolveArtifact(withGpu('NVIDIA A100-SXM4-80GB', '8.0'), [mlp, cnn]);
    assert.equal(r.chosen, null);
    for (const id of ['mlp-sm90', 'cnn-sm90']) {
      assert.deepEqual(reasonsOf(r, id), [
        "needs a GPU of compute capability 9.0 (code built for sm_90 runs only there); this device's GPUs: NVIDIA A100-SXM4-80GB (8.0)",
      ]);
    }
    assert.match(r.fallback.reason, /no compiled artifact fits this device: 2 rejected/);
  });

  it('refuses it for another torch: a CPU build (2.13.0+cpu) or another CUDA build (2.11.0+cu126)', () => {
    const cpuTorch = resolveArtifact({ ...h100, torch: { version: '2.13.0+cpu', cuda: null } }, [mlp]);
    assert.deepEqual(reasonsOf(cpuTorch, 'mlp-sm90'), [
      'built with torch 2.11.0 (2.11.0+cu130); this device runs torch 2.13.0 (2.13.0+cpu): compiled artifacts need the exact torch release',
      "needs a CUDA 13.0 build of torch (like 2.11.0+cu130); this device's torch 2.13.0+cpu is not a CUDA build",
    ]);
    const cu126 = resolveArtifact({ ...h100, torch: { version: '2.11.0+cu126', cuda: '12.6' } }, [mlp]);
    assert.deepEqual(reasonsOf(cu126, 'mlp-sm90'), [
      "needs torch built for CUDA 13.0; this device's torch 2.11.0+cu126 is built for CUDA 12.6",
    ]);
  });

  it('refuses it on an H100 whose host CPU lacks AVX-512 (its host code was built for an AVX-512 build host)', () => {
    const avx2Flags = h100.cpu.flags.filter((f) => !f.startsWith('avx512'));
    const r = resolveArtifact({ ...h100, cpu: { ...h100.cpu, flags: avx2Flags } }, [mlp]);
    assert.equal(r.chosen, null);
    assert.match(reasonsOf(r, 'mlp-sm90')[0], /^needs x86-64-v4 \(AVX-512 F\/BW\/CD\/DQ\/VL\); this CPU is x86-64-v3/);
  });

  it('hands out bf16 only when the request accepts it', () => {
    // Default: fp32 only. The bf16 artifact is refused with the reason even when it is the only one.
    const onlyBf16 = resolveArtifact(h100, [mlpBf16]);
    assert.equal(onlyBf16.chosen, null);
    const [reason, ...others] = reasonsOf(onlyBf16, 'mlp-sm90-bf16');
    assert.equal(others.length, 0);
    assert.match(reason, /^computes in bf16: reduced precision changes the numbers it returns/);
    assert.match(reason, /this request accepts fp32 — list "bf16" in acceptPrecisions to allow it$/);
    assert.equal(resolveArtifact(h100, [mlp, mlpBf16]).chosen?.artifactId, 'mlp-sm90');

    // Accepted: it competes on measured speed like any other artifact.
    const accepted = resolveArtifact(h100, [mlpBf16], { acceptPrecisions: ['fp32', 'bf16'] });
    assert.equal(accepted.chosen?.artifactId, 'mlp-sm90-bf16');
    assert.ok(accepted.chosen?.reasons.includes('computes in bf16 (reduced precision), which this request accepts'));
    const both = resolveArtifact(h100, [cnn, cnnBf16, mlp], { acceptPrecisions: ['bf16'] });
    assert.deepEqual(both.rejected, []);
    assert.deepEqual(both.ranked.map((x) => x.artifactId).sort(), ['cnn-sm90', 'cnn-sm90-bf16', 'mlp-sm90']);
    // On the H100 these small models were not faster in bf16 (kernel-launch bound): fp32 keeps winning.
    assert.equal(both.chosen?.artifactId, 'cnn-sm90');
    // fp16 accepted does not let bf16 in.
    assert.equal(resolveArtifact(h100, [mlpBf16], { acceptPrecisions: ['fp16'] }).chosen, null);
  });

  it('treats manifests written before precision existed as fp32', () => {
    const { precision: _dropped, ...old } = mlp.manifest as ArtifactManifest;
    assert.equal(resolveArtifact(h100, [{ ...mlp, manifest: old }]).chosen?.artifactId, 'mlp-sm90');
    assert.ok(cpu.every((c) => (c.manifest.precision ?? 'fp32') === 'fp32'));
  });

  it('refuses an unknown precision in the request', () => {
    assert.throws(
      () => resolveArtifact(h100, [mlp], { acceptPrecisions: ['int8' as never] }),
      /acceptPrecisions: unknown precision\(s\) int8/,
    );
  });
});
