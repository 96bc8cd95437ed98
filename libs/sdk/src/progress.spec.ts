import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildChanges } from './progress.js';
import { UploadProgress } from './upload-core/progress.js';
import type { Build, Compilation } from './types.js';

test('upload progress counts in-flight bytes, takes back failed attempts, and includes resumed parts', () => {
  const p = new UploadProgress(100, 4);
  p.partAlreadyStored(25);
  assert.equal(p.uploadedBytes, 25);
  assert.equal(p.resumedBytes, 25);
  p.partSent(2, 10);
  p.partSent(3, 20);
  assert.equal(p.uploadedBytes, 55);
  p.partFailed(2);
  assert.equal(p.uploadedBytes, 45);
  p.partSent(2, 25);
  p.partDone(2, 25);
  p.partSent(3, 5);
  p.partDone(3, 25);
  assert.equal(p.uploadedBytes, 75);
  assert.equal(p.partsDone, 3);
  p.partSent(4, 1000); // never more than the total
  assert.equal(p.uploadedBytes, 100);
});

const build = (targetId: string, status: Build['status'], phase: string | null = null): Build => ({
  targetId,
  status,
  phase,
  attempt: 1,
  errorCode: null,
  errorMessage: null,
  artifact: null,
  startedAt: null,
  finishedAt: null,
});
const compilation = (builds: Build[]): Compilation => ({
  id: 'c',
  modelVersionId: 'v',
  status: 'running',
  targets: builds.map((b) => b.targetId),
  reproduce: false,
  builds,
  createdAt: '',
  finishedAt: null,
  warnings: [],
});

test('build changes: new builds, status changes and phase changes, each once', () => {
  const seen = new Map<string, Build>();
  const first = compilation([build('a', 'queued'), build('b', 'queued')]);
  assert.deepEqual(
    buildChanges(seen, first).map((b) => b.targetId),
    ['a', 'b'],
  );
  for (const b of first.builds) seen.set(b.targetId, b);
  assert.deepEqual(buildChanges(seen, first), []);
  const second = compilation([build('a', 'running', 'compiling'), build('b', 'queued')]);
  assert.deepEqual(
    buildChanges(seen, second).map((b) => [b.targetId, b.status, b.phase]),
    [['a', 'running', 'compiling']],
  );
  seen.set('a', second.builds[0]);
  const third = compilation([build('a', 'running', 'verifying'), build('b', 'failed')]);
  assert.deepEqual(
    buildChanges(seen, third).map((b) => [b.targetId, b.phase ?? b.status]),
    [
      ['a', 'verifying'],
      ['b', 'failed'],
    ],
  );
});
