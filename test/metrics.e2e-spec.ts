/**
 * Prometheus /metrics of the API and the worker, each on its own port: request counts by route template (no ids),
 * the resolve fast path's cache lookups, no /metrics on the public port; after a real compilation, the worker's
 * build counters (attempt outcome, phase times, queue wait, the orchestrator's final count), its sandbox walls, and
 * the Temporal SDK's own metrics in the same scrape.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  api,
  type ApiProcess,
  createTenant,
  fixture,
  startApi,
  type TestTenant,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
} from './support/kiln-harness.js';

let app: ApiProcess;
let tenant: TestTenant;

before(async () => {
  app = await startApi();
  tenant = await createTenant(app, 'metrics');
});
let worker: WorkerProcess | undefined;
after(async () => {
  await worker?.stop();
  await app?.close();
});

async function scrape(url = app.metricsUrl): Promise<string> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  return res.text();
}

test('the public API port does not serve the metrics', async () => {
  // The dashboard's client-side routes answer unknown non-API paths with its index.html; what matters is that
  // no metric is exposed there.
  const res = await api(app).get('/metrics');
  assert.doesNotMatch(String(res.headers['content-type']), /text\/plain/);
  assert.doesNotMatch(res.text, /kiln_/);
});

test('requests are counted by route template, never by a path with ids', async () => {
  const id = randomUUID();
  await api(app).get(`/v1/models/${id}`).set(tenant.auth).expect(404);
  const text = await scrape();
  assert.match(text, /kiln_http_requests_total\{method="POST",route="\/v1\/admin\/tenants",status="201"\} [1-9]/);
  assert.match(text, /kiln_http_requests_total\{method="GET",route="\/v1\/models\/:[a-zA-Z]+",status="404"\} 1/);
  assert.doesNotMatch(text, new RegExp(id));
});

test('the resolve fast path counts its requests and cache lookups', async () => {
  const body = { model: `no-such-model-${Date.now()}`, fingerprint: {} };
  await api(app).post('/v1/resolve').set(tenant.auth).send(body);
  const text = await scrape();
  assert.match(text, /kiln_resolve_cache_requests_total\{result="miss"\} [1-9]/);
  assert.match(text, /kiln_http_requests_total\{method="POST",route="\/v1\/resolve",status="4\d\d"\} 1/);
});

/** The value of one series (exact label set as Prometheus prints it), or 0 when absent. */
function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

test("the worker's /metrics counts a compilation's build, its phases and the Temporal SDK's own metrics", async () => {
  worker = new WorkerProcess({ KILN_WORKER_TARGETS: 'linux-x86_64-v2' });
  await worker.start();
  const before = await scrape(worker.metricsUrl);
  const target = 'linux-x86_64-v2';
  assert.equal(value(before, `kiln_build_attempts_total{target="${target}",outcome="succeeded"}`), 0);
  // The sandbox self-test ran before the worker served builds: every wall it checked is reported, all holding.
  const walls = [...before.matchAll(/^kiln_sandbox_wall_holds\{wall="([^"]+)"\} (\d)$/gm)];
  assert.ok(walls.length >= 3, before);
  assert.ok(
    walls.every((w) => w[2] === '1'),
    walls.map((w) => w[0]).join('\n'),
  );

  const { versionId } = await uploadModel(app, tenant, `metrics-${randomUUID().slice(0, 8)}`, await fixture('mlp.pt2'));
  const res = await api(app)
    .post(`/v1/versions/${versionId}/compilations`)
    .set(tenant.auth)
    .send({ targets: [target] })
    .expect(201);
  const done = await waitForCompilation(app, tenant, (res.body as { id: string }).id);
  assert.equal(done.status, 'succeeded', JSON.stringify(done));

  const text = await scrape(worker.metricsUrl);
  // Counted since the scrape before (this worker may also have finished builds other test files left queued): the
  // build host's count of the attempt, the orchestrator's (same process here) of the finished build and compilation.
  const grew = (series: string) => value(text, series) - value(before, series);
  assert.ok(grew(`kiln_build_attempts_total{target="${target}",outcome="succeeded"}`) >= 1, text);
  assert.ok(grew(`kiln_builds_total{target="${target}",status="succeeded"}`) >= 1, text);
  assert.ok(grew(`kiln_compilations_total{status="succeeded"}`) >= 1, text);
  assert.ok(grew(`kiln_build_queue_wait_seconds_count{target="${target}"}`) >= 1, text);
  assert.ok(grew(`kiln_build_duration_seconds_count{target="${target}",status="succeeded"}`) >= 1, text);
  // Each phase an attempt goes through was timed: the download, the driver's compile, the upload.
  for (const phase of ['downloading', 'compiling', 'uploading']) {
    assert.ok(grew(`kiln_build_phase_duration_seconds_count{target="${target}",phase="${phase}"}`) >= 1, phase);
  }
  // No ids in any series.
  assert.doesNotMatch(text, new RegExp(versionId));
  // The Temporal SDK's metrics, from its own runtime, in the same scrape: the activity ran on this worker.
  assert.match(text, /^temporal_activity_execution_latency_count\{[^}]*activity_type="buildTarget"[^}]*\} [1-9]/m);
  assert.match(text, /^temporal_worker_task_slots_available\{/m);
});
