import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EVENTS_TOKEN_TTL_S, eventsTokenProblem, parseEventsToken, signEventsToken } from './events-token.js';

const KEY_ID = '0b7d3c2e-1f4a-4c1e-9a55-1234567890ab';
const SECRET = 'a'.repeat(64);
const COMPILATION = '7f1e2d3c-4b5a-4969-8877-665544332211';
const NOW = 1_800_000_000;

describe('compilation events tokens', () => {
  test('a fresh token opens its own compilation', () => {
    const token = signEventsToken(SECRET, KEY_ID, COMPILATION, NOW + EVENTS_TOKEN_TTL_S);
    const parsed = parseEventsToken(token);
    assert.ok(parsed);
    assert.equal(parsed.keyId, KEY_ID);
    assert.equal(eventsTokenProblem(parsed, SECRET, COMPILATION, NOW), null);
  });

  test('refused for another compilation, another key secret, or once expired', () => {
    const parsed = parseEventsToken(signEventsToken(SECRET, KEY_ID, COMPILATION, NOW + 60))!;
    assert.match(eventsTokenProblem(parsed, SECRET, '00000000-0000-4000-8000-000000000000', NOW)!, /another/);
    assert.match(eventsTokenProblem(parsed, 'b'.repeat(64), COMPILATION, NOW)!, /Invalid/);
    assert.match(eventsTokenProblem(parsed, SECRET, COMPILATION, NOW + 60)!, /expired/);
  });

  test('a token claiming a lifetime longer than the TTL is refused', () => {
    const parsed = parseEventsToken(signEventsToken(SECRET, KEY_ID, COMPILATION, NOW + 86_400))!;
    assert.match(eventsTokenProblem(parsed, SECRET, COMPILATION, NOW)!, /Invalid/);
  });

  test('malformed tokens parse to null', () => {
    for (const bad of [
      '',
      'ket1',
      'ket1.x.1.y',
      `kiln_abc.${KEY_ID}.1.${'A'.repeat(43)}`,
      `ket1.${KEY_ID}.-1.${'A'.repeat(43)}`,
    ]) {
      assert.equal(parseEventsToken(bad), null, bad);
    }
  });

  test('a changed expiry breaks the signature', () => {
    const token = signEventsToken(SECRET, KEY_ID, COMPILATION, NOW + 60);
    const forged = token.replace(`.${NOW + 60}.`, `.${NOW + 120}.`);
    assert.match(eventsTokenProblem(parseEventsToken(forged)!, SECRET, COMPILATION, NOW)!, /Invalid/);
  });
});
