import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideRetention, type RetentionCandidate } from './retention.js';

const NOW = new Date('2026-12-05T12:00:00Z');
const daysAgo = (d: number): Date => new Date(NOW.getTime() - d * 24 * 60 * 60 * 1000);

function version(rank: number, ageDays: number, extra: Partial<RetentionCandidate> = {}): RetentionCandidate {
  return {
    versionId: `v${rank}`,
    modelId: 'm',
    modelName: 'm',
    number: 10 - rank,
    createdAt: daysAgo(ageDays),
    rank,
    inChannel: false,
    inActiveRollout: false,
    compiling: false,
    ...extra,
  };
}

const kept = (decisions: ReturnType<typeof decideRetention>): string[] =>
  decisions.filter((d) => d.keep).map((d) => d.candidate.versionId);

test('keep the last N: the N newest of each model stay, the rest go', () => {
  const versions = [version(1, 1), version(2, 2), version(3, 3), { ...version(1, 9), versionId: 'other-newest' }];
  versions[3].modelId = 'other';
  const decisions = decideRetention(versions, { keepLastVersions: 2, maxAgeDays: null }, NOW);
  assert.deepEqual(kept(decisions), ['v1', 'v2', 'other-newest']);
  assert.deepEqual(decisions[0].keptBecause, ['newest']);
  assert.deepEqual(decisions[2].keptBecause, []);
});

test('younger than D days: age decides, rank does not', () => {
  const decisions = decideRetention([version(1, 40), version(2, 29.9), version(3, 30.1)], rules(null, 30), NOW);
  assert.deepEqual(kept(decisions), ['v2']);
  assert.deepEqual(decisions[1].keptBecause, ['young']);
});

test('with both rules a version stays when either keeps it', () => {
  const decisions = decideRetention([version(1, 100), version(2, 3), version(3, 100)], rules(1, 7), NOW);
  assert.deepEqual(kept(decisions), ['v1', 'v2']);
});

test('a channel, an active rollout or a running compilation always keeps a version, with every reason', () => {
  const decisions = decideRetention(
    [
      version(5, 400, { inChannel: true }),
      version(6, 400, { inActiveRollout: true }),
      version(7, 400, { compiling: true }),
      version(8, 400, { inChannel: true, compiling: true }),
      version(9, 400),
    ],
    rules(1, 1),
    NOW,
  );
  assert.deepEqual(kept(decisions), ['v5', 'v6', 'v7', 'v8']);
  assert.deepEqual(decisions[3].keptBecause, ['channel', 'compiling']);
});

test('no rule keeps everything (a policy needs one; this guards the planner itself)', () => {
  assert.deepEqual(kept(decideRetention([version(1, 999), version(2, 999)], rules(null, null), NOW)), ['v1', 'v2']);
});

function rules(keepLastVersions: number | null, maxAgeDays: number | null) {
  return { keepLastVersions, maxAgeDays };
}
