// The worker's metric bookkeeping in isolation: phase timing and the orchestrator's once-per-compilation count.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PhaseClock, WorkerMetrics } from './worker-metrics.js';

async function series(metrics: WorkerMetrics, name: string): Promise<Map<string, number>> {
  const metric = await metrics.registry.getSingleMetric(name)!.get();
  return new Map(
    metric.values.map((v) => [
      `${(v as { metricName?: string }).metricName ?? name}${JSON.stringify(v.labels)}`,
      v.value,
    ]),
  );
}

test('each phase is timed once, from entering it to the next one; a repeated report and `done` add nothing', async () => {
  const metrics = new WorkerMetrics();
  let now = 0;
  const clock = new PhaseClock(metrics, 'linux-x86_64-v2', () => now);
  clock.enter('downloading');
  now = 2_000;
  clock.enter('compiling');
  now = 5_000;
  clock.enter('compiling'); // the driver reports progress within a phase too
  now = 12_000;
  clock.enter('done');
  now = 13_000;
  clock.enter('uploading');
  now = 14_500;
  clock.end();
  clock.end(); // the activity's finally after an explicit end: nothing more

  const s = await series(metrics, 'kiln_build_phase_duration_seconds');
  const sum = (phase: string) =>
    s.get(`kiln_build_phase_duration_seconds_sum${JSON.stringify({ target: 'linux-x86_64-v2', phase })}`);
  const count = (phase: string) =>
    s.get(`kiln_build_phase_duration_seconds_count${JSON.stringify({ target: 'linux-x86_64-v2', phase })}`);
  assert.equal(sum('downloading'), 2);
  assert.equal(sum('compiling'), 10);
  assert.equal(sum('uploading'), 1.5);
  assert.equal(count('compiling'), 1);
  assert.equal(count('done'), undefined);
});

test('a finished compilation counts each build by its final status, and times only the builds that ran', async () => {
  const metrics = new WorkerMetrics();
  const t0 = new Date('2026-12-05T10:00:00Z');
  const t1 = new Date('2026-12-05T10:01:30Z');
  metrics.compilationFinished('partial', [
    { targetId: 'linux-x86_64-v2', status: 'succeeded', startedAt: t0, finishedAt: t1 },
    { targetId: 'linux-x86_64-v3', status: 'cached', startedAt: null, finishedAt: t1 },
    { targetId: 'linux-x86_64-v4', status: 'failed', startedAt: t0, finishedAt: t1 },
  ]);

  const builds = await series(metrics, 'kiln_builds_total');
  assert.equal(builds.get(`kiln_builds_total${JSON.stringify({ target: 'linux-x86_64-v2', status: 'succeeded' })}`), 1);
  assert.equal(builds.get(`kiln_builds_total${JSON.stringify({ target: 'linux-x86_64-v3', status: 'cached' })}`), 1);
  assert.equal(builds.get(`kiln_builds_total${JSON.stringify({ target: 'linux-x86_64-v4', status: 'failed' })}`), 1);
  const compilations = await series(metrics, 'kiln_compilations_total');
  assert.equal(compilations.get(`kiln_compilations_total${JSON.stringify({ status: 'partial' })}`), 1);
  const durations = await series(metrics, 'kiln_build_duration_seconds');
  const key = (target: string, status: string) =>
    `kiln_build_duration_seconds_sum${JSON.stringify({ target, status })}`;
  assert.equal(durations.get(key('linux-x86_64-v2', 'succeeded')), 90);
  assert.equal(durations.get(key('linux-x86_64-v3', 'cached')), undefined);
});
