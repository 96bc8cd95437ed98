import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RolloutGateSettings } from '@kiln/temporal';
import { type ArmStats, judgeClass } from './rollout-gates.js';

const gates: RolloutGateSettings = {
  holdSeconds: 60,
  checkIntervalSeconds: 5,
  maxErrorRate: 0.05,
  minReports: 5,
  maxLatencyRatio: 1.25,
  minReportsToPromote: 0,
};

function arm(reports: number, failures: number, ms: number[] = []): ArmStats {
  const logs = ms.map((x) => Math.log(x));
  return {
    reports,
    failures,
    failureCodes: failures > 0 ? { LOAD_FAILED: failures } : {},
    latencySamples: logs.length,
    logMsSum: logs.reduce((a, b) => a + b, 0),
    logMsSqSum: logs.reduce((a, b) => a + b * b, 0),
  };
}

const cls = { deviceClass: 'dc-1', label: 'class one' };

describe('rollout gates', () => {
  it('breaks the error-rate gate above the rate, with enough reports, and says why', () => {
    const breach = judgeClass({ ...cls, new: arm(6, 6), previous: arm(6, 0) }, gates);
    assert.equal(breach?.gate, 'error-rate');
    assert.match(breach?.message ?? '', /6 of 6 runs .*LOAD_FAILED ×6.*100 % > 5 %/);
  });

  it('does not judge a class on too few reports, nor at or under the rate', () => {
    assert.equal(judgeClass({ ...cls, new: arm(4, 4), previous: null }, gates), null);
    assert.equal(judgeClass({ ...cls, new: arm(20, 1), previous: null }, gates), null);
    assert.equal(
      judgeClass({ ...cls, new: null, previous: arm(20, 20) }, gates),
      null,
      'the previous arm is no reason',
    );
  });

  it('breaks the latency gate only when the new version is confidently slower by more than the ratio', () => {
    const fast = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0];
    const slow = fast.map((x) => x * 2);
    assert.equal(judgeClass({ ...cls, new: arm(6, 0, slow), previous: arm(6, 0, fast) }, gates)?.gate, 'latency');
    const bitSlower = fast.map((x) => x * 1.2);
    assert.equal(judgeClass({ ...cls, new: arm(6, 0, bitSlower), previous: arm(6, 0, fast) }, gates), null);
    // Noisy: 2x on average, but the spread leaves the ratio uncertain.
    const noisy = [0.5, 8, 0.6, 7, 0.4, 9];
    assert.equal(judgeClass({ ...cls, new: arm(6, 0, noisy), previous: arm(6, 0, fast) }, gates), null);
    // Too few runs on the previous arm: no comparison.
    assert.equal(judgeClass({ ...cls, new: arm(6, 0, slow), previous: arm(2, 0, fast.slice(0, 2)) }, gates), null);
  });
});
