// How the processes dial Temporal: plain by default, mTLS from files, an API key; half a pair is refused.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { temporalConnectionOptions } from './temporal-connection.js';

const dir = mkdtempSync(path.join(tmpdir(), 'kiln-temporal-tls-'));
const cert = path.join(dir, 'client.pem');
const key = path.join(dir, 'client.key');
writeFileSync(cert, 'CERT');
writeFileSync(key, 'KEY');
const base = { TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233' };

test('nothing set: plain TCP to the address', () => {
  assert.deepEqual(temporalConnectionOptions(base), { address: base.TEMPORAL_ADDRESS });
});

test("a certificate and key: mTLS with the files' bytes, and the server name when given", () => {
  const options = temporalConnectionOptions({
    ...base,
    TEMPORAL_TLS_CERT_FILE: cert,
    TEMPORAL_TLS_KEY_FILE: key,
    TEMPORAL_TLS_SERVER_NAME: 'ns.acct.tmprl.cloud',
  });
  assert.equal(options.tls?.clientCertPair?.crt.toString(), 'CERT');
  assert.equal(options.tls?.clientCertPair?.key.toString(), 'KEY');
  assert.equal(options.tls?.serverNameOverride, 'ns.acct.tmprl.cloud');
  assert.equal(options.apiKey, undefined);
});

test('an API key alone: TLS with the system roots, and the key', () => {
  const options = temporalConnectionOptions({ ...base, TEMPORAL_API_KEY: 'k' });
  assert.deepEqual(options.tls, {});
  assert.equal(options.apiKey, 'k');
});

test('half a pair or an unreadable file stops the start with the setting named', () => {
  assert.throws(() => temporalConnectionOptions({ ...base, TEMPORAL_TLS_CERT_FILE: cert }), /TEMPORAL_TLS_KEY_FILE/);
  assert.throws(
    () => temporalConnectionOptions({ ...base, TEMPORAL_TLS_CERT_FILE: cert, TEMPORAL_TLS_KEY_FILE: '/nonexistent' }),
    /TEMPORAL_TLS_KEY_FILE=\/nonexistent cannot be read/,
  );
});
