import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AVX2_LAPTOP_FINGERPRINT, EXAMPLE_FINGERPRINTS, H100_BOX_FINGERPRINT } from './example-fingerprints.js';
import { FINGERPRINT_LIMITS, validateFingerprint, type DeviceFingerprint } from './fingerprint.js';

function errorsOf(input: unknown): string[] {
  const r = validateFingerprint(input);
  assert.equal(r.ok, false, `expected errors for ${JSON.stringify(input)}`);
  return r.ok ? [] : r.errors;
}

function valueOf(input: unknown): DeviceFingerprint {
  const r = validateFingerprint(input);
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  return r.value;
}

/** A JSON round trip, as the resolver receives it. */
function json(fp: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(fp)) as Record<string, unknown>;
}

describe('validateFingerprint: accepts what device runtimes send', () => {
  for (const [name, fp] of Object.entries(EXAMPLE_FINGERPRINTS)) {
    it(`accepts the ${name} example; only the flag order changes`, () => {
      const value = valueOf(json(fp));
      assert.deepEqual(value, { ...fp, cpu: { ...fp.cpu, flags: [...new Set(fp.cpu.flags)].sort() } });
    });
  }

  it('normalises spellings: OS and arch aliases, symbol-version prefixes, flag case, whitespace', () => {
    const value = valueOf({
      ...json(AVX2_LAPTOP_FINGERPRINT),
      os: 'Linux',
      arch: 'AMD64',
      libc: { name: 'GLIBC', version: ' 2.035 ' },
      libstdcxx: { glibcxx: 'GLIBCXX_3.4.30' },
      cpu: { model: '  i7  ', flags: ['AVX2', 'avx2', ' sse4_2 '], x86Level: 3 },
      torch: { version: '2.13.0+CPU', cuda: null },
      gpus: [{ name: 'NVIDIA H100', computeCapability: '09.0' }],
    });
    assert.equal(value.os, 'linux');
    assert.equal(value.arch, 'x86_64');
    assert.deepEqual(value.libc, { name: 'glibc', version: '2.35' });
    assert.deepEqual(value.libstdcxx, { glibcxx: '3.4.30' });
    assert.deepEqual(value.cpu, { model: 'i7', flags: ['avx2', 'sse4_2'], x86Level: 3 });
    assert.equal(value.torch.version, '2.13.0+cpu');
    assert.deepEqual(value.gpus, [{ name: 'NVIDIA H100', computeCapability: '9.0' }]);
    assert.equal(valueOf({ ...json(AVX2_LAPTOP_FINGERPRINT), arch: 'arm64', cpu: { flags: [] } }).arch, 'aarch64');
    assert.equal(
      valueOf({ ...json(H100_BOX_FINGERPRINT), torch: { version: '2.11.0+cu128', cuda: '12.8.93' } }).torch.cuda,
      '12.8',
    );
  });

  it('drops unknown fields (newer runtimes may add optional ones) and never reads inherited ones', () => {
    const value = valueOf({ ...json(AVX2_LAPTOP_FINGERPRINT), futureField: { x: 1 }, cpu: { flags: [], cores: 8 } });
    assert.equal('futureField' in value, false);
    assert.deepEqual(value.cpu, { flags: [] });
    const inherited = Object.create(json(AVX2_LAPTOP_FINGERPRINT)) as unknown;
    assert.deepEqual(errorsOf(inherited), ['schemaVersion: is required (this resolver understands schemaVersion 1)']);
  });
});

describe('validateFingerprint: refuses', () => {
  it('anything but an object', () => {
    for (const bad of [null, 'fp', 42, [], true]) assert.match(errorsOf(bad)[0], /^fingerprint must be a JSON object/);
  });

  it('an unknown schemaVersion, with a clear message and nothing else checked', () => {
    assert.deepEqual(errorsOf({ ...json(AVX2_LAPTOP_FINGERPRINT), schemaVersion: 2, os: 'beos' }), [
      'schemaVersion: unsupported schemaVersion 2: the device runtime is newer than this resolver; update the resolver or send the fingerprint in an older schema',
    ]);
    assert.deepEqual(errorsOf({ ...json(AVX2_LAPTOP_FINGERPRINT), schemaVersion: '1' }), [
      'schemaVersion: unsupported schemaVersion "1": this resolver understands schemaVersion 1 only',
    ]);
    assert.deepEqual(errorsOf({ os: 'linux' }), [
      'schemaVersion: is required (this resolver understands schemaVersion 1)',
    ]);
  });

  it('reports every problem at once, each with its path', () => {
    const errors = errorsOf({
      schemaVersion: 1,
      os: 'beos',
      arch: 'riscv64',
      libc: { name: 'glibc' },
      libstdcxx: { glibcxx: 'new' },
      cpu: { flags: 'avx2', x86Level: 5 },
      torch: { version: 'latest' },
      gpus: [{ name: '', computeCapability: 'sm_90' }, 'H100'],
      hostname: 7,
    });
    assert.deepEqual(errors, [
      'os: must be one of linux, windows, darwin, got "beos"',
      'arch: must be one of x86_64, amd64, x64, aarch64, arm64, got "riscv64"',
      'libc.version: is required (null when unknown)',
      'libstdcxx.glibcxx: must be a dotted version like "2.36", got "new"',
      'cpu.flags: must be an array of strings (empty when unknown), got "avx2"',
      'cpu.x86Level: must be 1, 2, 3 or 4, got 5',
      'torch.version: must be torch.__version__ like "2.13.0+cpu", got "latest"',
      'torch.cuda: is required (torch.version.cuda; null for CPU builds)',
      'gpus[0].name: must not be empty',
      'gpus[0].computeCapability: must be "major.minor" like "9.0", got "sm_90"',
      'gpus[1]: must be an object, got "H100"',
      'hostname: must be a string, got 7',
    ]);
  });

  it('a torch version and CUDA version that contradict each other', () => {
    const base = json(H100_BOX_FINGERPRINT);
    assert.deepEqual(errorsOf({ ...base, torch: { version: '2.11.0+cu128', cuda: null } }), [
      'torch.cuda: is null, but torch.version "2.11.0+cu128" is a CUDA 12.8 build',
    ]);
    assert.deepEqual(errorsOf({ ...base, torch: { version: '2.11.0+cu128', cuda: '12.6' } }), [
      'torch.cuda: is 12.6, but torch.version "2.11.0+cu128" is a CUDA 12.8 build',
    ]);
    assert.deepEqual(errorsOf({ ...base, torch: { version: '2.11.0+cpu', cuda: '12.8' } }), [
      'torch.cuda: is 12.8, but torch.version "2.11.0+cpu" is a CPU build',
    ]);
  });

  it('an x86Level on a non-x86 device', () => {
    assert.deepEqual(errorsOf({ ...json(AVX2_LAPTOP_FINGERPRINT), arch: 'aarch64', cpu: { flags: [], x86Level: 3 } }), [
      'cpu.x86Level: applies to x86_64 only, but arch is aarch64',
    ]);
  });

  it('oversized arrays and strings, and caps the number of errors it returns', () => {
    const base = json(AVX2_LAPTOP_FINGERPRINT);
    const manyFlags = Array.from({ length: FINGERPRINT_LIMITS.maxCpuFlags + 1 }, (_, i) => `f${i}`);
    assert.deepEqual(errorsOf({ ...base, cpu: { flags: manyFlags } }), [
      'cpu.flags: must have at most 1024 entries, got 1025',
    ]);
    const manyGpus = Array.from({ length: 65 }, () => ({ name: 'x', computeCapability: '9.0' }));
    assert.deepEqual(errorsOf({ ...base, gpus: manyGpus }), ['gpus: must have at most 64 entries, got 65']);
    assert.deepEqual(errorsOf({ ...base, hostname: 'h'.repeat(254) }), [
      'hostname: must be at most 253 characters, got 254',
    ]);
    assert.match(
      errorsOf({ ...base, cpu: { flags: ['x'.repeat(65)] } })[0],
      /^cpu\.flags\[0\]: must be a non-empty string/,
    );
    assert.match(
      errorsOf({ ...base, cpu: { flags: ['avx 2'] } })[0],
      /^cpu\.flags\[0\]: must be a \/proc\/cpuinfo flag name/,
    );
    const errors = errorsOf({ ...base, cpu: { flags: Array.from({ length: 1000 }, () => 7) } });
    assert.equal(errors.length, FINGERPRINT_LIMITS.maxErrors + 1);
    assert.equal(errors.at(-1), '... and 950 more problems');
  });
});

describe('validateFingerprint: properties', () => {
  it('never throws, whatever JSON it gets', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (input) => {
        const r = validateFingerprint(input);
        assert.ok(r.ok || r.errors.length > 0);
      }),
      { numRuns: 300 },
    );
  });

  it('never throws when single fields of a valid fingerprint are replaced by arbitrary JSON', () => {
    const keys = ['os', 'arch', 'libc', 'libstdcxx', 'cpu', 'torch', 'gpus', 'hostname'];
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.jsonValue(), (key, junk) => {
        const r = validateFingerprint({ ...json(H100_BOX_FINGERPRINT), [key]: junk });
        if (!r.ok) assert.ok(r.errors.length > 0 && r.errors.every((e) => e.length < 400));
      }),
      { numRuns: 300 },
    );
  });

  it('is idempotent: a validated value validates to itself', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.values(EXAMPLE_FINGERPRINTS)),
        fc.constantFrom('x86_64', 'AMD64', 'x64'),
        fc.subarray(['AVX2', 'avx512f', ' pni ', 'sse4_2', 'sse4_2']),
        (fp, arch, flags) => {
          const first = valueOf({ ...json(fp), arch, cpu: { flags } });
          assert.deepEqual(valueOf(json(first)), first);
        },
      ),
      { numRuns: 100 },
    );
  });
});
