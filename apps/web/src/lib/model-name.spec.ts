import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isPt2Filename, modelNameFromFilename, modelNameProblem } from './model-name.js';

describe('upload dialog names', () => {
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
});
