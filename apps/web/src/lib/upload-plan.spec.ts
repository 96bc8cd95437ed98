import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  batches,
  isPt2Filename,
  modelNameFromFilename,
  modelNameProblem,
  partRanges,
  s3ErrorText,
  UploadProgress,
} from './upload-plan.js';

const MiB = 1024 ** 2;

describe('upload part planning', () => {
  test('parts tile the file; the last one is the remainder', () => {
    const parts = partRanges(70 * MiB + 5, 32 * MiB, 3);
    assert.deepEqual(
      parts.map((p) => [p.partNumber, p.offset, p.size]),
      [
        [1, 0, 32 * MiB],
        [2, 32 * MiB, 32 * MiB],
        [3, 64 * MiB, 6 * MiB + 5],
      ],
    );
    assert.equal(
      parts.reduce((s, p) => s + p.size, 0),
      70 * MiB + 5,
    );
  });

  test('a small file is one part', () => {
    assert.deepEqual(partRanges(358_475, 32 * MiB, 1), [{ partNumber: 1, offset: 0, size: 358_475 }]);
  });

  test('a server plan that does not tile the file is refused, not guessed at', () => {
    assert.throws(() => partRanges(100, 10, 11), /do not tile/);
    assert.throws(() => partRanges(0, 10, 0), /bad file size/);
    assert.throws(() => partRanges(100, 0, 1), /bad part size/);
  });

  test('batches keep order and size', () => {
    assert.deepEqual(batches([1, 2, 3, 4, 5, 6, 7, 8, 9], 4), [[1, 2, 3, 4], [5, 6, 7, 8], [9]]);
    assert.deepEqual(batches([], 4), []);
    assert.throws(() => batches([1], 0));
  });

  test('progress counts each part once, clamps, and forgets a retried part', () => {
    const p = new UploadProgress(partRanges(25, 10, 3));
    assert.equal(p.total, 25);
    p.update(1, 4);
    p.update(2, 999); // a browser may report more than the body (headers): clamp to the part
    assert.equal(p.sent, 14);
    p.done(1);
    p.done(1);
    assert.equal(p.sent, 20);
    p.reset(2); // part 2 is sent again from the start
    assert.equal(p.sent, 10);
    p.done(2);
    p.done(3);
    assert.equal(p.fraction, 1);
    assert.throws(() => p.update(4, 1), /unknown part/);
  });

  test('file names and model names', () => {
    assert.equal(isPt2Filename('mlp.pt2'), true);
    assert.equal(isPt2Filename('MODEL.PT2'), true);
    assert.equal(isPt2Filename('model.pt'), false);
    assert.equal(isPt2Filename('model.pt2.zip'), false);
    assert.equal(modelNameFromFilename('mlp.pt2'), 'mlp');
    assert.equal(modelNameFromFilename('ResNet 50 (final).pt2'), 'ResNet-50-final');
    assert.equal(modelNameFromFilename('C:\\exports\\edge_v2.pt2'), 'edge_v2');
    assert.equal(modelNameFromFilename('__.pt2'), 'model');
    assert.equal(modelNameFromFilename(`${'x'.repeat(150)}.pt2`).length, 100);
    for (const name of ['mlp', 'ResNet-50-final', 'edge_v2', 'model']) assert.equal(modelNameProblem(name), null);
    assert.match(modelNameProblem('')!, /name/);
    assert.match(modelNameProblem('-x')!, /starting/);
    assert.match(modelNameProblem('a b')!, /Letters/);
  });

  test('S3 error bodies read as code and message', () => {
    assert.equal(
      s3ErrorText(400, '<Error><Code>BadDigest</Code><Message>The sha256 did not match</Message></Error>'),
      'BadDigest: The sha256 did not match',
    );
    assert.equal(s3ErrorText(502, '<html>bad gateway</html>'), 'HTTP 502');
  });
});
