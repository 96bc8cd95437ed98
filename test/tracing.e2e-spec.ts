/**
 * Traces end to end: the API and a build worker export OTLP/HTTP (JSON) to a receiver inside this test, and one
 * compilation is one trace from the API's server span through Temporal (StartWorkflow → RunWorkflow →
 * StartActivity → RunActivity:buildTarget) to a span per phase of the compile driver. Resolve and download get
 * server spans, joined to the caller's trace when it sends a traceparent. With no OTLP endpoint set nothing is
 * exported. (No OpenTelemetry Collector is installable here from Debian, npm or PyPI: docs/operations.md, "Traces".)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { AVX2_LAPTOP_FINGERPRINT } from '@kiln/matching';
import { BUILD_MODEL_UPDATE, BUILD_UPLOADS_UPDATE, COMPILE_MODEL_WORKFLOW } from '@kiln/temporal';
import {
  api,
  type ApiProcess,
  type CompilationBody,
  createTenant,
  fixture,
  startApi,
  type TestTenant,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
} from './support/kiln-harness.js';

// Every x86-64 host from v2 up builds v2 (a test never assumes the CPU it runs on).
const TARGET = 'linux-x86_64-v2';
/** What the real driver reports, in order ("done" marks the end and is no span). */
const DRIVER_PHASES = ['loading', 'compiling', 'isa_check', 'packaging', 'verifying', 'timing'];

interface ReceivedSpan {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, unknown>;
  status: { code?: number; message?: string };
}

interface OtlpAnyValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpKeyValue {
  key: string;
  value: OtlpAnyValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: OtlpKeyValue[];
  status?: { code?: number; message?: string };
}
interface OtlpTraceRequest {
  resourceSpans?: { resource?: { attributes?: OtlpKeyValue[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}

function plain(value: OtlpAnyValue): unknown {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  return value.boolValue;
}

function attributesOf(list: OtlpKeyValue[] = []): Record<string, unknown> {
  return Object.fromEntries(list.map((kv) => [kv.key, plain(kv.value)]));
}

/**
 * An OTLP/HTTP trace receiver: what a collector's `otlp` receiver accepts on :4318, for the JSON encoding the
 * services' exporter sends (POST /v1/traces, ExportTraceServiceRequest as JSON, ids as hex).
 */
class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  requests = 0;
  private server?: Server;
  url = '';

  async start(port = 0): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        this.requests += 1;
        assert.match(String(req.headers['content-type']), /application\/json/);
        this.take(JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpTraceRequest);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', resolve);
    });
    const address = this.server.address();
    if (!address || typeof address === 'string') throw new Error('no port');
    this.url = `http://127.0.0.1:${address.port}`;
  }

  private take(body: OtlpTraceRequest): void {
    for (const rs of body.resourceSpans ?? []) {
      const service = String(attributesOf(rs.resource?.attributes)['service.name']);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          this.spans.push({
            service,
            name: s.name,
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId ?? '',
            kind: s.kind,
            startNs: BigInt(s.startTimeUnixNano),
            endNs: BigInt(s.endTimeUnixNano),
            attributes: attributesOf(s.attributes),
            status: s.status ?? {},
          });
        }
      }
    }
  }

  /** Waits until `found` returns something from the spans received so far (batches arrive every 200 ms here). */
  async waitFor<T>(what: string, found: (spans: ReceivedSpan[]) => T | undefined, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = found(this.spans);
      if (result !== undefined) return result;
      if (Date.now() > deadline) {
        const names = this.spans.map((s) => `${s.service} ${s.name} ${s.traceId}/${s.spanId}<-${s.parentSpanId}`);
        throw new Error(`${what}: not received in ${timeoutMs} ms; received:\n${names.join('\n')}`);
      }
      await sleep(250);
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

const receiver = new OtlpReceiver();
let app: ApiProcess;
let worker: WorkerProcess;
let tenant: TestTenant;
let compilation: CompilationBody;
let modelName: string;

/** The chain of parents of a span, up to its trace's root (or the first parent not received). */
function ancestors(spans: ReceivedSpan[], span: ReceivedSpan): ReceivedSpan[] {
  const byId = new Map(spans.filter((s) => s.traceId === span.traceId).map((s) => [s.spanId, s]));
  const chain: ReceivedSpan[] = [];
  for (let p = byId.get(span.parentSpanId); p; p = byId.get(p.parentSpanId)) chain.push(p);
  return chain;
}

before(async () => {
  await receiver.start();
  const tracing = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '200' };
  app = await startApi(tracing);
  worker = new WorkerProcess({ ...tracing, KILN_WORKER_TARGETS: TARGET });
  await worker.start();
  tenant = await createTenant(app, 'tracing');
  // Each process says where its traces go, under which service name.
  assert.ok(app.output.includes(`traces to ${receiver.url}/v1/traces as kiln-api`), app.output);
  assert.ok(worker.output.includes(`traces to ${receiver.url}/v1/traces as kiln-worker`), worker.output);
});

after(async () => {
  await worker?.stop();
  await app?.close();
  await receiver.close();
});

test('one trace spans the API request, the workflow, the build activity and the driver phases', async () => {
  modelName = `traced-mlp-${Date.now()}`;
  const { versionId } = await uploadModel(app, tenant, modelName, await fixture('mlp.pt2'));
  const res = await api(app)
    .post(`/v1/versions/${versionId}/compilations`)
    .set(tenant.auth)
    .send({ targets: [TARGET] })
    .expect(201);
  compilation = res.body as CompilationBody;
  const done = await waitForCompilation(app, tenant, compilation.id);
  assert.equal(done.status, 'succeeded', JSON.stringify(done, null, 2));

  const request = await receiver.waitFor('the server span of the compilation POST', (spans) =>
    spans.find(
      (s) =>
        s.service === 'kiln-api' &&
        s.name === 'POST /v1/versions/:versionId/compilations' &&
        s.attributes['url.path'] === `/v1/versions/${versionId}/compilations`,
    ),
  );
  assert.equal(request.kind, 2); // SERVER
  assert.equal(request.attributes['http.route'], '/v1/versions/:versionId/compilations');
  assert.equal(request.attributes['http.response.status_code'], 201);
  // The request's own trace: nothing above it (the test sent no traceparent).
  assert.equal(request.parentSpanId, '');

  const inTrace = (name: string, service: string) => (spans: ReceivedSpan[]) =>
    spans.find((s) => s.traceId === request.traceId && s.name === name && s.service === service);
  const start = await receiver.waitFor('StartWorkflow', inTrace(`StartWorkflow:${COMPILE_MODEL_WORKFLOW}`, 'kiln-api'));
  const run = await receiver.waitFor('RunWorkflow', inTrace(`RunWorkflow:${COMPILE_MODEL_WORKFLOW}`, 'kiln-worker'));
  const activity = await receiver.waitFor('RunActivity', inTrace('RunActivity:buildTarget', 'kiln-worker'));
  const phases = await receiver.waitFor('the driver phase spans', (spans) => {
    const found = spans.filter((s) => s.traceId === request.traceId && s.name.startsWith('driver:'));
    return found.length >= DRIVER_PHASES.length ? found : undefined;
  });

  // Parent ids chained: request → StartWorkflow → RunWorkflow → … → RunActivity → each driver phase.
  const all = receiver.spans;
  assert.equal(start.parentSpanId, request.spanId);
  assert.ok(ancestors(all, run).includes(start), 'RunWorkflow descends from StartWorkflow');
  const activityChain = ancestors(all, activity);
  assert.ok(activityChain.includes(run), 'the build activity descends from the workflow run');
  assert.equal(activityChain.at(-1), request, 'the trace root is the API request');
  assert.ok(
    activityChain.some((s) => s.name === 'StartActivity:buildTarget'),
    'scheduled by the workflow (StartActivity)',
  );

  // The build's own steps around the driver, and the updates through which the build host asks its workflow for
  // the model's and the parts' presigned URLs (its only way to reach storage).
  const download = await receiver.waitFor('download model', inTrace('download model', 'kiln-worker'));
  const upload = await receiver.waitFor('upload parts', inTrace('upload parts', 'kiln-worker'));
  assert.equal(download.parentSpanId, activity.spanId);
  assert.equal(upload.parentSpanId, activity.spanId);
  assert.ok(Number(upload.attributes['kiln.artifact.parts']) >= 1);
  const askModel = await receiver.waitFor(
    'buildModel update',
    inTrace(`StartWorkflowUpdate:${BUILD_MODEL_UPDATE}`, 'kiln-worker'),
  );
  const askUploads = await receiver.waitFor(
    'buildUploads update',
    inTrace(`StartWorkflowUpdate:${BUILD_UPLOADS_UPDATE}`, 'kiln-worker'),
  );
  assert.equal(askModel.parentSpanId, activity.spanId);
  assert.equal(askUploads.parentSpanId, upload.spanId);
  // The orchestrator's trusted half of the build (signing, publishing) belongs to the same workflow run.
  const publish = await receiver.waitFor('publishArtifact', inTrace('RunActivity:publishArtifact', 'kiln-worker'));
  assert.ok(ancestors(receiver.spans, publish).includes(run));

  phases.sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
  assert.deepEqual(
    phases.map((s) => s.name),
    DRIVER_PHASES.map((p) => `driver:${p}`),
  );
  for (const p of phases) {
    assert.equal(p.service, 'kiln-worker');
    assert.equal(p.parentSpanId, activity.spanId, `${p.name} is a child of the build activity`);
    assert.notEqual(p.status.code, 2, `${p.name} did not fail`);
    // Within the activity, and each phase ends before the next starts (the driver's own times).
    assert.ok(p.startNs >= activity.startNs && p.endNs <= activity.endNs, `${p.name} lies within the activity`);
    assert.ok(p.endNs >= p.startNs);
  }
  for (let i = 1; i < phases.length; i += 1) assert.ok(phases[i].startNs >= phases[i - 1].endNs);
  assert.ok(phases.every((p) => typeof p.attributes['kiln.driver.message'] === 'string'));
});

test("resolve and download get server spans, in the caller's trace when it sends a traceparent", async () => {
  const done = await waitForCompilation(app, tenant, compilation.id);
  const artifactId = done.builds[0].artifact?.id;
  assert.ok(artifactId, 'the build published an artifact');
  // A device that traces its own work sends its span's context: the API's spans join that trace.
  const traceId = randomBytes(16).toString('hex');
  const deviceSpanId = randomBytes(8).toString('hex');
  const traceparent = `00-${traceId}-${deviceSpanId}-01`;

  const resolved = await api(app)
    .post('/v1/resolve')
    .set(tenant.auth)
    .set('traceparent', traceparent)
    .send({ model: modelName, fingerprint: AVX2_LAPTOP_FINGERPRINT });
  assert.equal(resolved.status, 200, resolved.text);
  await api(app)
    .get(`/v1/artifacts/${artifactId}/download`)
    .set(tenant.auth)
    .set('traceparent', traceparent)
    .expect(200);

  const [resolve, download] = await receiver.waitFor('the resolve and download server spans', (spans) => {
    const mine = spans.filter((s) => s.traceId === traceId && s.service === 'kiln-api');
    const r = mine.find((s) => s.name === 'POST /v1/resolve');
    const d = mine.find((s) => s.name === 'GET /v1/artifacts/:artifactId/download');
    return r && d ? [r, d] : undefined;
  });
  for (const span of [resolve, download]) {
    assert.equal(span.kind, 2); // SERVER
    assert.equal(span.parentSpanId, deviceSpanId);
    assert.equal(span.attributes['http.response.status_code'], 200);
  }
  // The fast path's span says what it answered: a compiled artifact or the portable graph, and from where.
  assert.match(String(resolve.attributes['kiln.resolve.outcome']), /^(artifact|portable)$/);
  assert.match(String(resolve.attributes['kiln.resolve.cache']), /^(hit|miss)$/);
  assert.equal(download.attributes['url.path'], `/v1/artifacts/${artifactId}/download`);
});

test('with no OTLP endpoint set, nothing is exported and the API works', async (t) => {
  // A receiver where an exporter without a configured endpoint would send (the OTLP/HTTP default, :4318): if tracing
  // were on by default, the spans of these requests would arrive there.
  const fallback = new OtlpReceiver();
  try {
    await fallback.start(4318);
  } catch {
    t.skip('port 4318 is taken on this host');
    return;
  }
  let untraced: ApiProcess | undefined;
  try {
    untraced = await startApi();
    const other = await createTenant(untraced, 'untraced');
    await api(untraced).get('/v1/targets').set(other.auth).expect(200);
    assert.doesNotMatch(untraced.output, /traces to/);
    const resolved = await api(untraced)
      .post('/v1/resolve')
      .set(other.auth)
      .send({ model: 'no-such-model', fingerprint: AVX2_LAPTOP_FINGERPRINT });
    assert.match(String(resolved.status), /^4\d\d$/, resolved.text); // unknown model: refused, not broken
    // Longer than the batch delay of the traced processes here, and than the SDK's default (5 s) export interval.
    await sleep(6000);
    assert.equal(fallback.requests, 0);
    assert.deepEqual(fallback.spans, []);
  } finally {
    await untraced?.close();
    await fallback.close();
  }
});
