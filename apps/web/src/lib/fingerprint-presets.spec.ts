import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EXAMPLE_FINGERPRINTS, validateFingerprint } from '@kiln/matching';
import {
  describeDevice,
  FINGERPRINT_PRESETS,
  findPreset,
  fingerprintToJson,
  parseFingerprint,
} from './fingerprint-presets.js';

describe('resolver playground presets', () => {
  test('the brief’s three devices are offered, and they are the library’s own examples', () => {
    const labels = FINGERPRINT_PRESETS.map((p) => p.label);
    for (const label of ['AVX2 laptop', 'AVX-512 server', 'H100']) assert.ok(labels.includes(label), label);
    for (const p of FINGERPRINT_PRESETS) assert.equal(p.fingerprint, EXAMPLE_FINGERPRINTS[p.id], p.id);
    assert.equal(new Set(FINGERPRINT_PRESETS.map((p) => p.id)).size, FINGERPRINT_PRESETS.length);
    assert.equal(findPreset('avx2-laptop')?.label, 'AVX2 laptop');
  });

  test('every preset is a valid fingerprint, and its editor JSON parses back to the same device', () => {
    for (const p of FINGERPRINT_PRESETS) {
      assert.ok(validateFingerprint(p.fingerprint).ok, p.id);
      const text = fingerprintToJson(p.fingerprint);
      assert.deepEqual(JSON.parse(text), p.fingerprint, p.id);
      const parsed = parseFingerprint(text);
      assert.ok(parsed.ok, p.id);
      // CPU flags stay on one line: the editor shows ~20 lines, not 150.
      assert.ok(text.split('\n').length < 40, `${p.id}: ${text.split('\n').length} lines`);
    }
  });

  test('parse errors name the problem', () => {
    const notJson = parseFingerprint('{ nope');
    assert.equal(notJson.ok, false);
    assert.match(!notJson.ok ? notJson.errors[0] : '', /Not valid JSON/);
    const wrongVersion = parseFingerprint('{"schemaVersion": 7}');
    assert.equal(wrongVersion.ok, false);
    assert.match(!wrongVersion.ok ? wrongVersion.errors.join(' ') : '', /schemaVersion/);
  });

  test('one-line device descriptions', () => {
    assert.equal(
      describeDevice(findPreset('avx2-laptop')!.fingerprint),
      'linux/x86_64 · x86-64-v3 · glibc 2.35 · torch 2.13.0+cpu · no GPU',
    );
    assert.match(describeDevice(findPreset('h100-box')!.fingerprint), /x86-64-v4 .* NVIDIA H100 80GB HBM3 \(9\.0\)$/);
    assert.doesNotMatch(describeDevice(findPreset('graviton')!.fingerprint), /x86-64/);
  });
});
