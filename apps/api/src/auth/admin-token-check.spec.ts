import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_ADMIN_TOKEN, validateKilnConfig } from '@kiln/config';
import { adminTokenProblem } from './admin-token-check.js';

const LONG = 'f'.repeat(64);

test('outside local mode the default and short admin tokens are refused; a long one is accepted', () => {
  const production = (token: string): string | null =>
    adminTokenProblem(validateKilnConfig({ KILN_ADMIN_TOKEN: token }));
  assert.match(production(DEFAULT_ADMIN_TOKEN) ?? '', /public default/);
  assert.match(production('x'.repeat(31)) ?? '', /at least 32/);
  assert.equal(production(LONG), null);
  assert.equal(adminTokenProblem(validateKilnConfig({ KILN_LOCAL_MODE: 'true' })), null);
});

test('the API listens on loopback in local mode, on every interface outside it, or where KILN_API_HOST says', () => {
  assert.equal(validateKilnConfig({ KILN_LOCAL_MODE: 'true' }).apiHost, '127.0.0.1');
  assert.equal(validateKilnConfig({ KILN_ADMIN_TOKEN: LONG }).apiHost, '0.0.0.0');
  assert.equal(validateKilnConfig({ KILN_LOCAL_MODE: 'true', KILN_API_HOST: '0.0.0.0' }).apiHost, '0.0.0.0');
  assert.equal(validateKilnConfig({ KILN_API_HOST: '10.0.0.5', KILN_ADMIN_TOKEN: LONG }).apiHost, '10.0.0.5');
  assert.equal(validateKilnConfig({ KILN_LOCAL_MODE: 'true', KILN_API_HOST: '' }).apiHost, '127.0.0.1');
});
