/**
 * The API's Prometheus /metrics on its own port: request counts by route template (no ids), the resolve fast
 * path's cache lookups, and no /metrics on the public port. (The worker's build metrics are not built yet.)
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { api, createTenant, startApi, type ApiProcess, type TestTenant } from './support/kiln-harness.js';

let app: ApiProcess;
let tenant: TestTenant;

before(async () => {
  app = await startApi();
  tenant = await createTenant(app, 'metrics');
});
after(() => app?.close());

async function scrape(): Promise<string> {
  const res = await fetch(app.metricsUrl);
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
