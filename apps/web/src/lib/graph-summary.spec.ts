import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DimSpec } from '@kiln/contracts';
import { formatDim, niceCeil, opBars, shortOpName, weightBytes } from './graph-summary.js';
import { buildStatusInfo, compilationStatusInfo, phaseIndex, phaseLabel, retryableTargets } from './status.js';
import { targetShortLabel } from './targets.js';
import { channelNameProblem } from './channels.js';

describe('graph summary', () => {
  test('operator names are shortened for the chart', () => {
    assert.equal(shortOpName('aten.linear.default'), 'linear');
    assert.equal(shortOpName('aten.add.Tensor'), 'add.Tensor');
    assert.equal(shortOpName('_operator.getitem'), 'getitem');
  });

  test('the histogram keeps the most used operators and folds the rest', () => {
    const bars = opBars(
      { 'aten.linear.default': 3, 'aten.relu.default': 1, 'aten.gelu.default': 1, 'aten.view.default': 0 },
      2,
    );
    assert.deepEqual(
      bars.map((b) => [b.label, b.count]),
      [
        ['linear', 3],
        ['gelu', 1],
        ['1 other op', 1],
      ],
    );
    assert.equal(bars[2].op, null);
  });

  test('dynamic dimensions read with their ranges', () => {
    const dyn = (min: number | null, max: number | null): DimSpec => ({
      kind: 'dynamic',
      expr: 's0',
      symbols: ['s0'],
      min,
      max,
      hint: 8,
    });
    assert.equal(formatDim({ kind: 'static', size: 64 }), '64');
    assert.equal(formatDim(dyn(1, 256)), 's0 ∈ [1, 256]');
    assert.equal(formatDim(dyn(2, null)), 's0 ≥ 2');
    assert.equal(formatDim(dyn(null, 9)), 's0 ≤ 9');
    assert.equal(formatDim(dyn(null, null)), 's0');
  });

  test('weights and chart axes', () => {
    const t = (bytes: number) => ({ tensors: 1, elements: bytes / 4, bytes });
    assert.equal(weightBytes({ parameters: t(400), buffers: t(40), constants: t(4) }), 444);
    assert.equal(niceCeil(7), 8);
    assert.equal(niceCeil(230), 250);
    assert.equal(niceCeil(0.9), 1);
    assert.equal(niceCeil(0.042), 0.05);
    assert.equal(niceCeil(0), 1);
  });
});

describe('statuses and targets', () => {
  test('build and compilation statuses', () => {
    assert.deepEqual(buildStatusInfo('running'), { label: 'Building', tone: 'progress', active: true });
    assert.equal(buildStatusInfo('cached').tone, 'success');
    assert.equal(compilationStatusInfo('partial').tone, 'warning');
    assert.equal(compilationStatusInfo('succeeded').active, false);
  });

  test('phases in pipeline order', () => {
    assert.equal(phaseIndex(null), -1);
    assert.equal(phaseIndex('downloading'), 0);
    assert.equal(phaseIndex('verifying'), 5);
    assert.equal(phaseIndex('done'), 8);
    assert.equal(phaseIndex('something-new'), null);
    assert.equal(phaseLabel('isa_check'), 'Checking instructions');
    assert.equal(phaseLabel('warming_up'), 'warming up');
  });

  test('retry takes failed and cancelled targets only', () => {
    assert.deepEqual(
      retryableTargets([
        { targetId: 'a', status: 'succeeded' },
        { targetId: 'b', status: 'failed' },
        { targetId: 'c', status: 'cancelled' },
        { targetId: 'd', status: 'cached' },
      ]),
      ['b', 'c'],
    );
  });

  test('short target labels and channel names', () => {
    assert.equal(targetShortLabel('linux-x86_64-v3'), 'x86_64-v3');
    assert.equal(targetShortLabel('linux-x86_64-cuda-sm90'), 'cuda-sm90');
    assert.equal(channelNameProblem('prod'), null);
    assert.match(channelNameProblem('Prod')!, /Lower-case/);
    assert.match(channelNameProblem('')!, /Name/);
  });
});
