// Issue 15, item 4: structured logs. The compiled API and worker run with KILN_LOG_FORMAT=json (as outside local mode):
// every line is one JSON object; a request's lines carry its request id (the caller's X-Request-Id, else a fresh
// one, echoed in the response) and, once its key is known, its tenant; a caller's traceparent puts the trace id on
// them (tracing on); a build's lines on the worker carry the compilation, build, target and activity ids.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
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

type Line = Record<string, unknown> & { msg?: string };

let app: ApiProcess;
let worker: WorkerProcess | undefined;
let tenant: TestTenant;
/** Accepts the spans the API exports (tracing on, so a traceparent joins the caller's trace); they are not read. */
let sink: http.Server;

before(async () => {
  sink = http.createServer((req, res) => req.resume().on('end', () => res.writeHead(200).end('{}')));
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  app = await startApi({
    KILN_LOG_FORMAT: 'json',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(sink.address() as AddressInfo).port}`,
  });
  tenant = await createTenant(app, 'logging');
});

after(async () => {
  await worker?.stop();
  await app?.close();
  await new Promise((resolve) => sink.close(resolve));
});

/** The process's output lines, each parsed; a line that is not a JSON object fails the test. */
function linesOf(output: string): Line[] {
  return output
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Line;
      } catch {
        assert.fail(`not a JSON log line: ${l}`);
      }
    });
}

test('every API line is JSON; a request carries its request id and tenant, and the trace id of its traceparent', async () => {
  const traceId = randomBytes(16).toString('hex');
  const res = await api(app)
    .get('/v1/models')
    .set(tenant.auth)
    .set('X-Request-Id', 'logging-e2e-1')
    .set('traceparent', `00-${traceId}-${randomBytes(8).toString('hex')}-01`)
    .expect(200);
  assert.equal(res.headers['x-request-id'], 'logging-e2e-1');

  // A request id that is not a plain token is not echoed into the logs: a fresh one replaces it.
  const odd = await api(app).get('/v1/models').set(tenant.auth).set('X-Request-Id', 'two words {"a":1}').expect(200);
  assert.match(String(odd.headers['x-request-id']), /^[0-9a-f-]{36}$/);

  await new Promise((resolve) => setTimeout(resolve, 500));
  const lines = linesOf(app.output);
  assert.ok(lines.every((l) => l.service === 'kiln-api' && typeof l.level === 'number'));
  assert.ok(lines.some((l) => l.msg?.startsWith('API listening on')));
  const done = lines.find((l) => (l.req as { id?: string } | undefined)?.id === 'logging-e2e-1');
  assert.ok(done, app.output.slice(-3000));
  assert.equal(done.msg, 'GET /v1/models 200');
  assert.equal(done.tenantId, tenant.id);
  assert.equal(done.traceId, traceId);
  // No key in any line.
  assert.doesNotMatch(app.output, new RegExp(tenant.key));
});

test("a build's lines on the worker carry its compilation, build, target and activity", async () => {
  worker = new WorkerProcess({ KILN_LOG_FORMAT: 'json', KILN_WORKER_TARGETS: 'linux-x86_64-v2' });
  await worker.start();
  const { versionId } = await uploadModel(app, tenant, `logging-${randomUUID().slice(0, 8)}`, await fixture('mlp.pt2'));
  const res = await api(app)
    .post(`/v1/versions/${versionId}/compilations`)
    .set(tenant.auth)
    .send({ targets: ['linux-x86_64-v2'] })
    .expect(201);
  const compilationId = (res.body as { id: string }).id;
  const done = await waitForCompilation(app, tenant, compilationId);
  assert.equal(done.status, 'succeeded', JSON.stringify(done));

  // The worker's own stdout lines (Temporal's core writes nothing at its default level here).
  const lines = linesOf(worker.output);
  assert.ok(lines.some((l) => l.msg?.startsWith('worker ready, polling:')));
  const ofThisCompilation = lines.filter((l) => l.compilationId === compilationId);
  assert.ok(ofThisCompilation.length > 0, worker.output.slice(-3000));
  const build = ofThisCompilation.find((l) => l.activity === 'buildTarget');
  assert.ok(build, JSON.stringify(ofThisCompilation, null, 1));
  assert.equal(build.targetId, 'linux-x86_64-v2');
  assert.equal(build.tenantId, tenant.id);
  assert.equal(typeof build.buildId, 'string');
  assert.equal(build.workflowId, `compile-${compilationId}`);
});
