import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compareDottedVersions,
  cudaMajorMinor,
  normalizeComputeCapability,
  normalizeDottedVersion,
  parseDottedVersion,
  parseTorchVersion,
} from './versions.js';

describe('dotted versions', () => {
  it('compares numerically, padding missing components with 0', () => {
    const cmp = (a: string, b: string) =>
      compareDottedVersions(parseDottedVersion(a) ?? [], parseDottedVersion(b) ?? []);
    assert.equal(cmp('3.4.30', '3.4.9'), 1);
    assert.equal(cmp('2.9', '2.17'), -1);
    assert.equal(cmp('2.34', '2.34.0'), 0);
    assert.equal(cmp('2.36', '2.34'), 1);
  });

  it('normalises symbol-version prefixes and leading zeros, and refuses anything else', () => {
    assert.equal(normalizeDottedVersion('GLIBCXX_3.4.030'), '3.4.30');
    assert.equal(normalizeDottedVersion('GLIBC_2.34'), '2.34');
    assert.equal(normalizeDottedVersion(' 2.36 '), '2.36');
    for (const bad of ['', '2.', '.2', '2..3', 'v2.3', '2.3-1', '2.36-9+deb12u14']) {
      assert.equal(normalizeDottedVersion(bad), null, bad);
    }
  });

  it('reads CUDA major.minor and compute capabilities', () => {
    assert.equal(cudaMajorMinor('12.8'), '12.8');
    assert.equal(cudaMajorMinor('12.8.93'), '12.8');
    assert.equal(cudaMajorMinor('12'), null);
    assert.equal(normalizeComputeCapability('9.0'), '9.0');
    assert.equal(normalizeComputeCapability('10.0'), '10.0');
    assert.equal(normalizeComputeCapability('9'), null);
    assert.equal(normalizeComputeCapability('9.0.1'), null);
  });
});

describe('parseTorchVersion', () => {
  it('splits public version, local tag and the CUDA version of a +cuXYZ tag', () => {
    assert.deepEqual(parseTorchVersion('2.13.0+cpu'), { public: '2.13.0', local: 'cpu', cuda: null });
    assert.deepEqual(parseTorchVersion('2.11.0+cu128'), { public: '2.11.0', local: 'cu128', cuda: '12.8' });
    assert.deepEqual(parseTorchVersion('2.7.1+cu118'), { public: '2.7.1', local: 'cu118', cuda: '11.8' });
    assert.deepEqual(parseTorchVersion('2.9.0+cu130'), { public: '2.9.0', local: 'cu130', cuda: '13.0' });
    assert.deepEqual(parseTorchVersion('2.5.1'), { public: '2.5.1', local: null, cuda: null });
    assert.deepEqual(parseTorchVersion('2.6.0+rocm6.2'), { public: '2.6.0', local: 'rocm6.2', cuda: null });
    assert.deepEqual(parseTorchVersion('2.7.0.dev20250301+cu126'), {
      public: '2.7.0.dev20250301',
      local: 'cu126',
      cuda: '12.6',
    });
    assert.deepEqual(parseTorchVersion('2.6.0a0+ecf3bae40a.nv25.01'), {
      public: '2.6.0a0',
      local: 'ecf3bae40a.nv25.01',
      cuda: null,
    });
  });

  it('refuses what torch never prints', () => {
    for (const bad of ['', '2', 'latest', '2.13.0+', '2.13.0+cu 128', 'v2.13.0', '2.13.0-rc1']) {
      assert.equal(parseTorchVersion(bad), null, bad);
    }
  });
});
