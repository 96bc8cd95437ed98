import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type DeviceFingerprint, validateFingerprint } from './fingerprint.js';
import { type Candidate, checkCandidate } from './match-artifacts.js';
import {
  compareDottedVersions,
  cudaMajorMinor,
  normalizeComputeCapability,
  normalizeDottedVersion,
  parseDottedVersion,
  parseTorchVersion,
  type TorchVersion,
} from './versions.js';

/**
 * The shared test vectors of test/fixtures/contracts/ for this library: the same files are run by the device
 * runtime's pytest (python/runtime/tests/test_contract_vectors.py) against kiln_runtime, so a rule one side applies
 * differently fails one of the two test commands.
 */

const CONTRACTS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/contracts');
const load = <T>(name: string) => JSON.parse(readFileSync(resolve(CONTRACTS, name), 'utf8')) as T;

interface VersionVectors {
  dotted: { input: string; parsed: number[] | null; normalized: string | null }[];
  compare: { a: string; b: string; result: -1 | 0 | 1 }[];
  torch: { input: string; parsed: TorchVersion | null }[];
  cudaMajorMinor: { input: string; result: string | null }[];
  computeCapability: { input: string; result: string | null }[];
}

describe('shared vectors: versions (test/fixtures/contracts/versions.json)', () => {
  const file = load<VersionVectors>('versions.json');

  it('dotted versions: parsed and normalised', () => {
    for (const v of file.dotted) {
      assert.deepEqual(parseDottedVersion(v.input), v.parsed, JSON.stringify(v.input));
      assert.equal(normalizeDottedVersion(v.input), v.normalized, JSON.stringify(v.input));
    }
  });

  it('dotted versions: compared', () => {
    for (const v of file.compare) {
      const [a, b] = [parseDottedVersion(v.a), parseDottedVersion(v.b)];
      assert.ok(a && b, `${v.a} and ${v.b} must both parse`);
      assert.equal(compareDottedVersions(a, b), v.result, `${v.a} vs ${v.b}`);
    }
  });

  it('torch versions', () => {
    for (const v of file.torch) assert.deepEqual(parseTorchVersion(v.input), v.parsed, JSON.stringify(v.input));
  });

  it('CUDA major.minor and compute capabilities', () => {
    for (const v of file.cudaMajorMinor) assert.equal(cudaMajorMinor(v.input), v.result, JSON.stringify(v.input));
    for (const v of file.computeCapability) {
      assert.equal(normalizeComputeCapability(v.input), v.result, JSON.stringify(v.input));
    }
  });
});

interface NeedsVectors {
  fingerprints: Record<string, DeviceFingerprint>;
  vectors: { name: string; fingerprint: string; manifest: Candidate['manifest']; passed: string[]; failed: string[] }[];
}

describe('shared vectors: the hard rules (test/fixtures/contracts/needs.json)', () => {
  const file = load<NeedsVectors>('needs.json');

  it('every fingerprint is one the resolver accepts unchanged, and each is used', () => {
    for (const [name, fp] of Object.entries(file.fingerprints)) {
      const checked = validateFingerprint(fp);
      assert.ok(checked.ok, `${name}: ${checked.ok ? '' : checked.errors.join('; ')}`);
      assert.deepEqual(checked.value, fp, `${name} is not in the resolver's normalised form`);
      assert.ok(
        file.vectors.some((v) => v.fingerprint === name),
        `no vector uses ${name}`,
      );
    }
  });

  for (const v of file.vectors) {
    it(v.name, () => {
      const fp = file.fingerprints[v.fingerprint];
      assert.ok(fp, `no fingerprint ${v.fingerprint}`);
      const check = checkCandidate(fp, { artifactId: 'a', targetId: 't', manifest: v.manifest });
      assert.deepEqual({ passed: check.passed, failed: check.failed }, { passed: v.passed, failed: v.failed });
      assert.equal(check.compatible, v.failed.length === 0);
    });
  }
});
