import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Short-lived tokens for `GET /v1/compilations/:id/events`. A browser's EventSource cannot send an
 * Authorization header, and an API key in a URL would end up in proxy logs and browser history for good.
 * So the dashboard first asks (with its key, in the header) for a token that only opens the event stream
 * of ONE compilation, for a few minutes.
 *
 * Format: `ket1.<apiKeyId>.<expiresAtUnixSeconds>.<base64url HMAC-SHA256>`. The MAC covers the key id,
 * the compilation id and the expiry, keyed with the sha256 of the API key that asked for it (the hash the
 * API stores). Every API instance can check it without shared state, and revoking the key revokes its
 * tokens at once.
 */
export const EVENTS_TOKEN_PREFIX = 'ket1';
export const EVENTS_TOKEN_TTL_S = 300;

export interface EventsTokenClaims {
  keyId: string;
  expiresAt: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function mac(secret: string, keyId: string, compilationId: string, expiresAt: number): Buffer {
  return createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(`kiln-compilation-events-v1\n${keyId}\n${compilationId}\n${expiresAt}`)
    .digest();
}

export function signEventsToken(secret: string, keyId: string, compilationId: string, expiresAt: number): string {
  return [
    EVENTS_TOKEN_PREFIX,
    keyId,
    expiresAt,
    mac(secret, keyId, compilationId, expiresAt).toString('base64url'),
  ].join('.');
}

/** The claims of a well-formed token (not yet verified: the caller needs the key id to find the secret). */
export function parseEventsToken(token: string): (EventsTokenClaims & { signature: Buffer }) | null {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== EVENTS_TOKEN_PREFIX) return null;
  const [, keyId, exp, sig] = parts as [string, string, string, string];
  if (!UUID.test(keyId) || !/^\d{1,12}$/.test(exp) || !/^[A-Za-z0-9_-]{43}$/.test(sig)) return null;
  return { keyId, expiresAt: Number(exp), signature: Buffer.from(sig, 'base64url') };
}

/**
 * Why a token does not open this compilation's stream, or null when it does. `nowS` is in seconds;
 * a token claiming to live longer than the TTL is refused (it was not made by this code).
 */
export function eventsTokenProblem(
  token: EventsTokenClaims & { signature: Buffer },
  secret: string,
  compilationId: string,
  nowS: number,
): string | null {
  if (token.expiresAt <= nowS) return 'The events token has expired; ask for a new one.';
  if (token.expiresAt > nowS + EVENTS_TOKEN_TTL_S + 60) return 'Invalid events token.';
  const expected = mac(secret, token.keyId, compilationId, token.expiresAt);
  if (expected.length !== token.signature.length || !timingSafeEqual(expected, token.signature)) {
    return 'Invalid events token (or it is for another compilation).';
  }
  return null;
}
