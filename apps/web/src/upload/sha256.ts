import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

/**
 * base64 of the sha256 of `bytes` (what S3 checks a part against: x-amz-checksum-sha256). WebCrypto when
 * the page has it; it exists only in secure contexts (https, or http on localhost), so a dashboard served
 * over plain http on another host hashes in JavaScript instead (audited @noble/hashes).
 */
export async function sha256Base64(bytes: ArrayBuffer): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  const digest = subtle ? new Uint8Array(await subtle.digest('SHA-256', bytes)) : nobleSha256(new Uint8Array(bytes));
  let binary = '';
  for (const b of digest) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** A random id (Idempotency-Key); crypto.randomUUID needs a secure context, getRandomValues does not. */
export function randomId(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
