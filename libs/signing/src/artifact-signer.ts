import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Artifact signatures: the build side signs the exact bytes of each artifact's manifest with ed25519; the
 * manifest lists every part's sha256 and size, so the signature covers the whole artifact. Devices verify
 * the signature with Kiln's published public key, then each part's hash, before loading anything.
 *
 * The signed message is `kiln-artifact-manifest-v1\n` followed by the manifest bytes (domain separation:
 * a signature can never be replayed as a signature over something else).
 */
export const SIGNATURE_DOMAIN = 'kiln-artifact-manifest-v1\n';

/**
 * The portable graph's manifest (a version's uploaded .pt2, which devices fall back to) is signed with the same key
 * under its own domain: an artifact manifest's signature can never pass for a portable one, nor the reverse.
 */
export const PORTABLE_SIGNATURE_DOMAIN = 'kiln-portable-manifest-v1\n';

export interface PublicSigningKey {
  keyId: string;
  algorithm: 'ed25519';
  /** Raw 32-byte public key, base64. */
  publicKey: string;
  /** The same key as SPKI PEM, for tools that want PEM. */
  publicKeyPem: string;
}

export function signedMessage(manifestBytes: Uint8Array, domain = SIGNATURE_DOMAIN): Buffer {
  return Buffer.concat([Buffer.from(domain, 'utf8'), manifestBytes]);
}

export function describePublicKey(key: KeyObject): PublicSigningKey {
  const raw = Buffer.from((key.export({ format: 'jwk' }) as { x: string }).x, 'base64url');
  return {
    keyId: createHash('sha256').update(raw).digest('hex').slice(0, 16),
    algorithm: 'ed25519',
    publicKey: raw.toString('base64'),
    publicKeyPem: key.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

export class ArtifactSigner {
  private constructor(
    private readonly privateKey: KeyObject,
    readonly publicKey: PublicSigningKey,
  ) {}

  /**
   * Loads the PKCS#8 PEM key at `file`, creating one on first use when `createIfMissing` (local
   * development; production provisions the key from its secret store and never lets a worker mint one).
   */
  static async fromFile(file: string, createIfMissing: boolean): Promise<ArtifactSigner> {
    let pem: string;
    try {
      pem = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !createIfMissing) throw err;
      const { privateKey } = generateKeyPairSync('ed25519');
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      try {
        // 'wx': when the API and a worker start together, exactly one creates the key; the other reads it.
        await writeFile(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      pem = await readFile(file, 'utf8');
    }
    const privateKey = createPrivateKey(pem);
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`${file} is not an ed25519 key`);
    return new ArtifactSigner(privateKey, describePublicKey(createPublicKey(privateKey)));
  }

  sign(manifestBytes: Uint8Array): { signature: string; keyId: string } {
    return {
      signature: sign(null, signedMessage(manifestBytes), this.privateKey).toString('base64'),
      keyId: this.publicKey.keyId,
    };
  }

  /** Signs a portable graph's manifest (PORTABLE_SIGNATURE_DOMAIN). */
  signPortable(manifestBytes: Uint8Array): { signature: string; keyId: string } {
    return {
      signature: sign(null, signedMessage(manifestBytes, PORTABLE_SIGNATURE_DOMAIN), this.privateKey).toString(
        'base64',
      ),
      keyId: this.publicKey.keyId,
    };
  }
}

export function verifyArtifactSignature(
  publicKeyBase64: string,
  manifestBytes: Uint8Array,
  signatureBase64: string,
  domain = SIGNATURE_DOMAIN,
): boolean {
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKeyBase64, 'base64').toString('base64url') },
    format: 'jwk',
  });
  return verify(null, signedMessage(manifestBytes, domain), key, Buffer.from(signatureBase64, 'base64'));
}
