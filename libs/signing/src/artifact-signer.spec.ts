import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ArtifactSigner, PORTABLE_SIGNATURE_DOMAIN, verifyArtifactSignature } from './artifact-signer.js';

const dir = await mkdtemp(path.join(tmpdir(), 'kiln-signing-'));
after(() => rm(dir, { recursive: true, force: true }));

test('signs manifest bytes; any changed byte or another key fails verification', async () => {
  const file = path.join(dir, 'a', 'key.pem');
  const signer = await ArtifactSigner.fromFile(file, true);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  const manifest = Buffer.from(JSON.stringify({ target: 'linux-x86_64-v3', parts: [{ sha256: 'ab', size: 1 }] }));
  const { signature, keyId } = signer.sign(manifest);
  assert.equal(keyId, signer.publicKey.keyId);
  assert.ok(verifyArtifactSignature(signer.publicKey.publicKey, manifest, signature));

  const tampered = Buffer.from(manifest);
  tampered[10] ^= 1;
  assert.equal(verifyArtifactSignature(signer.publicKey.publicKey, tampered, signature), false);
  const other = await ArtifactSigner.fromFile(path.join(dir, 'b', 'key.pem'), true);
  assert.equal(verifyArtifactSignature(other.publicKey.publicKey, manifest, signature), false);
});

test('reuses an existing key, and refuses to mint one when told not to', async () => {
  const file = path.join(dir, 'c', 'key.pem');
  const first = await ArtifactSigner.fromFile(file, true);
  const pem = await readFile(file, 'utf8');
  const second = await ArtifactSigner.fromFile(file, false);
  assert.equal(second.publicKey.keyId, first.publicKey.keyId);
  assert.equal(await readFile(file, 'utf8'), pem);
  await assert.rejects(ArtifactSigner.fromFile(path.join(dir, 'missing', 'key.pem'), false), /ENOENT/);
});

test('portable manifests are signed under their own domain: neither signature passes for the other', async () => {
  const signer = await ArtifactSigner.fromFile(path.join(dir, 'd', 'key.pem'), true);
  const manifest = Buffer.from(JSON.stringify({ kind: 'portable', versionId: 'v', file: { sha256: 'ab', size: 1 } }));
  const portable = signer.signPortable(manifest);
  const key = signer.publicKey.publicKey;
  assert.ok(verifyArtifactSignature(key, manifest, portable.signature, PORTABLE_SIGNATURE_DOMAIN));
  assert.equal(verifyArtifactSignature(key, manifest, portable.signature), false, 'not an artifact signature');
  const artifact = signer.sign(manifest);
  assert.equal(verifyArtifactSignature(key, manifest, artifact.signature, PORTABLE_SIGNATURE_DOMAIN), false);
});
