import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { x86LevelFromFlags } from '@kiln/targets/x86-levels';
import { validateFingerprint, type DeviceFingerprint } from './fingerprint.js';
import { resolveArtifact } from './match-artifacts.js';
import { makeCandidate } from './testing/make-candidate.js';

// docs/fingerprint.md is the contract the Python device runtime implements: keep its examples true.
const doc = readFileSync(new URL('../../../docs/fingerprint.md', import.meta.url), 'utf8');
const blocks = [...doc.matchAll(/```json\n([\s\S]*?)\n```/g)].map((m) => JSON.parse(m[1]) as Record<string, unknown>);
const fingerprints = blocks.filter((b) => 'schemaVersion' in b);

function fingerprintNamed(host: string): DeviceFingerprint {
  const fp = fingerprints.find((b) => b.hostname === host);
  const r = validateFingerprint(fp);
  assert.ok(r.ok, `${host}: ${r.ok ? '' : r.errors.join('; ')}`);
  return r.value;
}

describe('docs/fingerprint.md', () => {
  it('has three example fingerprints, all valid, at the levels the text gives', () => {
    assert.equal(fingerprints.length, 3);
    assert.equal(x86LevelFromFlags(fingerprintNamed('laptop-17').cpu.flags), 3);
    assert.equal(x86LevelFromFlags(fingerprintNamed('inference-03').cpu.flags), 4);
    assert.equal(x86LevelFromFlags(fingerprintNamed('gpu-h100-01').cpu.flags), 4);
  });

  it('shows the resolution the library actually gives for the laptop', () => {
    const needs = { glibc: '2.34', glibcxx: '3.4.30' };
    const candidates = [
      makeCandidate({ artifactId: 'art_v2', requires: { x86Level: 2, ...needs }, speedup: 1.21 }),
      makeCandidate({ artifactId: 'art_v3', requires: { x86Level: 3, ...needs }, speedup: 1.55 }),
      makeCandidate({ artifactId: 'art_v4', requires: { x86Level: 4, ...needs }, speedup: 1.62 }),
    ];
    const documented = blocks.find((b) => 'chosen' in b);
    assert.deepEqual(resolveArtifact(fingerprintNamed('laptop-17'), candidates), documented);
  });
});
