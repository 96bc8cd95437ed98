import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { KilnAbortError, KilnApiError, KilnNetworkError } from '@kiln/sdk';
import { BUILD_PHASES, buildStep, describeBuild } from './build-steps.js';
import { credentialsPath, resolveCredentials, saveCredentials } from './credentials.js';
import { ExitCode, exitCodeFor, UsageError } from './exit-codes.js';

test('errors map to the documented exit codes', () => {
  assert.equal(exitCodeFor(new KilnApiError(401, 'UNAUTHENTICATED', 'x')), ExitCode.AUTH);
  assert.equal(exitCodeFor(new KilnApiError(403, 'FORBIDDEN', 'x')), ExitCode.AUTH);
  assert.equal(exitCodeFor(new KilnApiError(404, 'NOT_FOUND', 'x')), ExitCode.NOT_FOUND);
  assert.equal(exitCodeFor(new KilnApiError(404, 'UPLOAD_NOT_FOUND', 'x')), ExitCode.NOT_FOUND);
  assert.equal(exitCodeFor(new KilnApiError(422, 'PT2_TRUNCATED', 'x')), ExitCode.USAGE);
  assert.equal(exitCodeFor(new KilnApiError(400, 'UNKNOWN_TARGET', 'x')), ExitCode.USAGE);
  assert.equal(exitCodeFor(new KilnApiError(503, 'SERVICE_UNAVAILABLE', 'x')), ExitCode.SERVER);
  assert.equal(exitCodeFor(new KilnApiError(500, 'INTERNAL', 'x')), ExitCode.SERVER);
  assert.equal(exitCodeFor(new KilnNetworkError('refused')), ExitCode.SERVER);
  assert.equal(exitCodeFor(new KilnAbortError()), ExitCode.INTERRUPTED);
  assert.equal(exitCodeFor(new UsageError('x')), ExitCode.USAGE);
  assert.equal(exitCodeFor(Object.assign(new Error('x'), { code: 'ENOENT' })), ExitCode.NOT_FOUND);
});

test('build bars move through the phases and end full whatever the outcome', () => {
  const last = BUILD_PHASES.length - 1;
  assert.equal(buildStep({ status: 'queued', phase: null }), 0);
  assert.equal(buildStep({ status: 'running', phase: 'compiling' }), BUILD_PHASES.indexOf('compiling'));
  assert.equal(buildStep({ status: 'running', phase: 'something-new' }, 4), 4);
  assert.equal(buildStep({ status: 'running', phase: null }), 1);
  assert.equal(buildStep({ status: 'failed', phase: 'compiling' }), last);
  assert.equal(buildStep({ status: 'cached', phase: 'done' }), last);
  assert.equal(describeBuild({ status: 'failed', phase: null, errorCode: 'COMPILE_FAILED' }), 'failed: COMPILE_FAILED');
  assert.equal(describeBuild({ status: 'waiting_for_worker', phase: null, errorCode: null }), 'waiting for a worker');
});

test('credentials: flags over env over the 0600 file', async () => {
  const home = await mkdtemp(path.join(os.tmpdir(), 'kiln-cli-'));
  const env = { XDG_CONFIG_HOME: home };
  try {
    await assert.rejects(resolveCredentials({}, env), (e: UsageError) => e.exitCode === ExitCode.AUTH);
    const file = await saveCredentials({ apiUrl: 'http://file', apiKey: 'kiln_file' }, env);
    assert.equal(file, credentialsPath(env));
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { apiUrl: 'http://file', apiKey: 'kiln_file' });
    assert.deepEqual(await resolveCredentials({}, env), { apiUrl: 'http://file', apiKey: 'kiln_file' });
    assert.deepEqual(await resolveCredentials({}, { ...env, KILN_API_KEY: 'kiln_env' }), {
      apiUrl: 'http://file',
      apiKey: 'kiln_env',
    });
    assert.deepEqual(await resolveCredentials({ apiUrl: 'http://flag' }, { ...env, KILN_API_URL: 'http://env' }), {
      apiUrl: 'http://flag',
      apiKey: 'kiln_file',
    });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});
