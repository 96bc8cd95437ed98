import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeServing, formatInterval, isRolloutActive, rolloutStatusInfo, stageStates } from './fleet.js';

describe('fleet view helpers', () => {
  it('formats intervals and servings', () => {
    assert.equal(formatInterval([2.912, 3.318]), '2.91–3.32×');
    assert.equal(formatInterval(null), '');
    assert.equal(describeServing({ versionNumber: 2, targetId: null }), 'v2 · portable graph');
    assert.equal(describeServing({ versionNumber: 1, targetId: 'linux-x86_64-v2' }), 'v1 · linux-x86_64-v2');
  });

  it('says where a rollout stands', () => {
    assert.deepEqual(
      stageStates({ stages: [10, 50, 100], stageIndex: 1, status: 'running' }).map((s) => s.state),
      ['done', 'current', 'next'],
    );
    assert.deepEqual(
      stageStates({ stages: [10, 50, 100], stageIndex: 2, status: 'completed' }).map((s) => s.state),
      ['done', 'done', 'done'],
    );
    assert.equal(isRolloutActive({ status: 'paused' }), true);
    assert.equal(isRolloutActive({ status: 'rolled_back' }), false);
    assert.equal(rolloutStatusInfo('rolled_back').tone, 'danger');
  });
});
