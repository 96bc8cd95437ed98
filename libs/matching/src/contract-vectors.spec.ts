import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  applyChanges,
  compileSchema,
  loadContractVectors,
  readRepoJson,
  type SchemaVectors,
} from '../../../test/support/contract-vectors.js';
import { type DeviceFingerprint, FINGERPRINT_LIMITS, validateFingerprint } from './fingerprint.js';
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
 * runtime's pytest (python/runtime/tests/test_contract_vectors.py) against kiln_runtime.
 */

interface VersionVectors {
  dotted: { input: string; parsed: number[] | null; normalized: string | null }[];
  compare: { a: string; b: string; result: -1 | 0 | 1 }[];
  torch: { input: string; parsed: TorchVersion | null }[];
  cudaMajorMinor: { input: string; result: string | null }[];
  computeCapability: { input: string; result: string | null }[];
}

describe('shared vectors: versions (test/fixtures/contracts/versions.json)', () => {
  const file = loadContractVectors<VersionVectors>('versions.json');

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
  const file = loadContractVectors<NeedsVectors>('needs.json');

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

type FingerprintVectors = SchemaVectors<DeviceFingerprint, { valid: boolean }>;

describe('shared vectors: fingerprints (test/fixtures/contracts/fingerprints.json) and their schema', () => {
  const file = loadContractVectors<FingerprintVectors>('fingerprints.json');
  // The parts of the schema that state a limit.
  interface Limited {
    maxLength: number;
    maxItems: number;
    items: Limited;
    properties: Record<string, Limited>;
    oneOf: Limited[];
  }
  const schema = readRepoJson<{ properties: Record<string, Limited>; $defs: Record<string, Limited> }>(
    'libs/contracts/src/schemas/fingerprint.schema.json',
  );
  const schemaAccepts = compileSchema('fingerprint');

  it('the schema states the resolver’s limits', () => {
    const { cpu, torch, gpus, hostname } = schema.properties;
    assert.deepEqual(
      {
        maxCpuFlags: cpu.properties.flags.maxItems,
        maxCpuFlagLength: cpu.properties.flags.items.maxLength,
        maxGpus: gpus.maxItems,
        maxNameLength: schema.$defs.name.maxLength,
        maxVersionLength: torch.properties.version.maxLength,
        maxHostnameLength: hostname.maxLength,
      },
      // maxErrors caps the resolver's answer, not the document.
      Object.fromEntries(Object.entries(FINGERPRINT_LIMITS).filter(([key]) => key !== 'maxErrors')),
    );
    assert.equal(schema.$defs.nullableDotted.oneOf[1].maxLength, FINGERPRINT_LIMITS.maxVersionLength);
  });

  for (const v of file.vectors) {
    it(`${v.valid ? 'accepts' : 'refuses'} ${v.name}`, () => {
      const fp = applyChanges(file.bases[v.base], v.changes);
      const checked = validateFingerprint(fp);
      assert.equal(checked.ok, v.valid, checked.ok ? 'accepted' : checked.errors.join('; '));
      assert.equal(schemaAccepts(fp), v.schema, JSON.stringify(schemaAccepts.errors));
      // What the schema accepts the resolver accepts, but for the rules only the code states.
      if (v.schema && !v.valid) assert.ok(v.beyondSchema, 'the schema accepts what the resolver refuses');
      if (checked.ok)
        assert.ok(schemaAccepts(checked.value), 'the resolver normalised it to a value the schema refuses');
    });
  }
});
