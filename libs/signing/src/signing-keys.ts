import { createPublicKey } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { ArtifactSigner, describePublicKey, type PublicSigningKey } from './artifact-signer.js';

/**
 * The public half of the signing key: all the API holds (it serves it at GET /v1/signing-keys and never signs).
 * Production provisions the file from its secret store next to the orchestrator's private key. In local mode
 * (`createIfMissing`) a missing pair is created here, so the API can start before the first worker; only the
 * public half is kept in memory.
 */
export async function loadPublicSigningKey(
  publicKeyFile: string,
  local: { privateKeyFile: string; createIfMissing: boolean },
): Promise<PublicSigningKey> {
  let pem: string;
  try {
    pem = await readFile(publicKeyFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !local.createIfMissing) throw err;
    const signer = await ArtifactSigner.fromFile(local.privateKeyFile, true);
    await writePublicKeyFile(publicKeyFile, signer.publicKey);
    pem = signer.publicKey.publicKeyPem;
  }
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${publicKeyFile} is not an ed25519 public key`);
  return describePublicKey(key);
}

/** Writes the public key file the API reads (the orchestrator does, whenever it holds the private key). */
export async function writePublicKeyFile(file: string, key: PublicSigningKey): Promise<void> {
  const current = await readFile(file, 'utf8').catch(() => null);
  if (current === key.publicKeyPem) return;
  await writeFile(file, key.publicKeyPem, { mode: 0o644 });
}
