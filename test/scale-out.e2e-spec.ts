// Issue 15, item 7: scale-out on one machine. One orchestrator-only worker, three build-only workers as if on three
// hosts (each its own KILN_HOME, so its own job folders, timing lock and downloads, and its own KILN_WORKER_ID) and
// two API replicas behind a round-robin proxy that stands in for the load balancer. Builds spread across the build
// workers; kill -9 of one of them mid-build loses nothing (the build is retried on another, one artifact per cache
// key); kill -9 of an API replica costs an SDK client at most one retry per call that hit it.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import { kilnDataSourceOptions } from '@kiln/database';
import { KilnClient, type ProgressEvent } from '@kiln/sdk';
import {
  api,
  type ApiProcess,
  type CompilationBody,
  createTenant,
  fixture,
  FIXTURES_DIR,
  REPO_ROOT,
  startApi,
  storage,
  type TestTenant,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
} from './support/kiln-harness.js';

// Every x86-64 host from v2 up builds v2 (a test never assumes the CPU it runs on).
const TARGET = 'linux-x86_64-v2';
// Each "host" keeps its state here; never under /tmp (the sandbox gives jobs a private /tmp).
const HOSTS_DIR = path.join(REPO_ROOT, '.kiln', 'scale-out-e2e');

const config = loadKilnConfig();
const ds = new DataSource(kilnDataSourceOptions(config.DATABASE_URL, { logging: false }));
const s3 = storage();
const orchestrator = new WorkerProcess({ KILN_WORKER_ROLES: 'orchestrator', KILN_WORKER_ID: 'scale-orchestrator' });
const buildHosts = [1, 2, 3].map((n) => ({
  id: `scale-build-host-${n}`,
  worker: new WorkerProcess({
    KILN_WORKER_ROLES: 'build',
    KILN_WORKER_ID: `scale-build-host-${n}`,
    KILN_HOME: path.join(HOSTS_DIR, `host-${n}`),
    KILN_WORKER_TARGETS: TARGET,
    KILN_WORKER_BUILD_CONCURRENCY: '1',
  }),
}));
let replicas: ApiProcess[] = [];
let tenant: TestTenant;

before(async () => {
  await rm(HOSTS_DIR, { recursive: true, force: true });
  await ds.initialize();
  // One after the other: the first applies any pending migration, the second finds none.
  replicas = [await startApi(), await startApi()];
  tenant = await createTenant(replicas[0], 'scale');
  await Promise.all([orchestrator.start(), ...buildHosts.map((h) => h.worker.start(300_000))]);
  for (const h of buildHosts) assert.deepEqual(h.worker.servedX86Targets(), [TARGET], h.worker.output);
});

after(async () => {
  await Promise.all([orchestrator.stop(), ...buildHosts.map((h) => h.worker.stop())]);
  await Promise.all(replicas.map((r) => r.close()));
  await ds.destroy();
  s3.client.destroy();
  await rm(HOSTS_DIR, { recursive: true, force: true });
});

interface BuildRow {
  id: string;
  compilation_id: string;
  status: string;
  phase: string | null;
  attempt: number;
  worker_id: string | null;
}

const buildRows = (compilationIds: string[]): Promise<BuildRow[]> =>
  ds.query(
    `SELECT id, compilation_id, status, phase, attempt, worker_id FROM builds WHERE compilation_id = ANY($1::uuid[])`,
    [compilationIds],
  );

async function waitForRows(
  compilationIds: string[],
  done: (rows: BuildRow[]) => boolean,
  timeoutMs = 5 * 60_000,
): Promise<BuildRow[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await buildRows(compilationIds);
    if (done(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`builds not there in time: ${JSON.stringify(rows, null, 2)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

test('builds spread across three build workers; kill -9 of one mid-build loses nothing and duplicates nothing', async (t) => {
  const app = replicas[0];
  // Three models with different bytes: three cache keys, so three real builds at once, one per build worker.
  const versions = await Promise.all(
    ['mlp', 'mlp-retrained', 'pair'].map(
      async (name) => (await uploadModel(app, tenant, `scale-${name}`, await fixture(`${name}.pt2`))).versionId,
    ),
  );
  const compilationIds = await Promise.all(
    versions.map(async (versionId) => {
      const res = await api(app)
        .post(`/v1/versions/${versionId}/compilations`)
        .set(tenant.auth)
        .send({ targets: [TARGET] })
        .expect(201);
      return (res.body as CompilationBody).id;
    }),
  );

  // Each worker runs one build at a time, so three builds waiting for three idle workers start on different ones.
  const started = await waitForRows(
    compilationIds,
    (rows) => rows.length === 3 && rows.every((r) => r.worker_id !== null),
  );
  const ranOn = new Set(started.map((r) => r.worker_id));
  assert.ok(ranOn.size >= 2, `the builds ran on at least two workers: ${JSON.stringify(started)}`);
  for (const id of ranOn)
    assert.ok(
      buildHosts.some((h) => h.id === id),
      `${id} is one of the build hosts`,
    );

  // Kill the worker of a build that is compiling (the driver is mid-work, not about to finish).
  const victim = await waitForRows(compilationIds, (rows) =>
    rows.some((r) => r.status === 'running' && r.phase === 'compiling'),
  ).then((rows) => rows.find((r) => r.status === 'running' && r.phase === 'compiling')!);
  const victimHost = buildHosts.find((h) => h.id === victim.worker_id)!;
  victimHost.worker.kill9();
  t.diagnostic(`builds started on ${[...ranOn].join(', ')}; killed ${victimHost.id} while it compiled ${victim.id}`);

  const done = await Promise.all(compilationIds.map((id) => waitForCompilation(app, tenant, id)));
  for (const c of done) assert.equal(c.status, 'succeeded', JSON.stringify(c, null, 2));
  const finished = await buildRows(compilationIds);
  const retried = finished.find((r) => r.id === victim.id)!;
  assert.ok(retried.attempt >= 2, `the killed worker's build was retried (attempt ${retried.attempt})`);
  assert.notEqual(retried.worker_id, victimHost.id, 'a surviving worker finished it');
  t.diagnostic(`build ${retried.id} finished on ${retried.worker_id}, attempt ${retried.attempt}`);
  assert.ok(
    buildHosts.some((h) => h.id === retried.worker_id && h !== victimHost),
    `finished by a build host: ${retried.worker_id}`,
  );

  // Exactly one artifact per (version, target): one row per cache key, one manifest in S3 each, each part once.
  const perKey: { cache_key: string; n: number }[] = await ds.query(
    `SELECT cache_key, count(*)::int AS n FROM artifacts WHERE tenant_id = $1 GROUP BY cache_key`,
    [tenant.id],
  );
  assert.equal(perKey.length, 3, JSON.stringify(perKey));
  assert.ok(
    perKey.every((k) => k.n === 1),
    JSON.stringify(perKey),
  );
  const parts = new Set<string>();
  for (const versionId of versions) {
    const res = await api(app).get(`/v1/versions/${versionId}/artifacts`).set(tenant.auth).expect(200);
    const list = res.body as { targetId: string; parts: { sha256: string }[] }[];
    assert.equal(list.length, 1, `one artifact for ${versionId}: ${JSON.stringify(list)}`);
    assert.equal(list[0].targetId, TARGET);
    for (const p of list[0].parts) parts.add(p.sha256);
  }
  const keys = await s3.listKeys(`tenants/${tenant.id}/`);
  assert.equal(keys.filter((k) => k.includes('/manifests/')).length, 3, JSON.stringify(keys));
  assert.equal(keys.filter((k) => k.includes('/blobs/')).length, parts.size, JSON.stringify(keys));
});

/**
 * A round-robin HTTP proxy in front of the replicas (the load balancer's part): a request goes to the next upstream
 * in turn; when that upstream refuses the connection or drops it before answering, the client gets 502, as from an
 * ALB. It never takes a dead upstream out of the rotation (an ALB does after its health checks fail): the worst case.
 */
class RoundRobinProxy {
  private next = 0;
  private server?: Server;
  /** The 502s it answered, by upstream. */
  readonly badGateways = new Map<string, number>();
  url = '';

  constructor(private readonly upstreams: () => string[]) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const list = this.upstreams();
      const upstream = list[this.next++ % list.length];
      const { hostname, port } = new URL(upstream);
      // A fresh connection per request (agent: false): a reused one closed by a live replica's keep-alive timeout
      // would give a 502 that is not the dead replica's.
      const forward = httpRequest(
        { host: hostname, port, method: req.method, path: req.url, headers: req.headers, agent: false },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on('error', () => {
        if (res.headersSent) return res.destroy();
        this.badGateways.set(upstream, (this.badGateways.get(upstream) ?? 0) + 1);
        res.writeHead(502, { 'content-type': 'text/plain' }).end('502 Bad Gateway');
      });
      req.pipe(forward);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    if (!address || typeof address === 'string') throw new Error('no port');
    this.url = `http://127.0.0.1:${address.port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

test('an API replica killed while an SDK client works: every call succeeds, at most one retry each', async (t) => {
  const proxy = new RoundRobinProxy(() => replicas.map((r) => r.url));
  await proxy.start();
  const retries: Extract<ProgressEvent, { type: 'retry' }>[] = [];
  const client = new KilnClient({ baseUrl: proxy.url, apiKey: tenant.key, onRetry: (e) => retries.push(e) });
  const [doomed] = replicas;
  let killed = false;
  try {
    // cnn: bytes no earlier test compiled, so a real build the client polls for a while.
    const result = await client.compileRemote(path.join(FIXTURES_DIR, 'cnn.pt2'), {
      model: 'scale-replica-cnn',
      targets: [TARGET],
      pollIntervalMs: 250,
      resumeStateDir: false,
      onProgress: (e) => {
        if (!killed && e.type === 'build' && e.status === 'running') {
          killed = true;
          doomed.kill9();
        }
      },
    });
    assert.ok(killed, 'the replica was killed while the client polled');
    assert.ok(result.ok, JSON.stringify(result.targets, null, 2));
    assert.equal(result.artifacts.length, 1);
    // A few more calls after the build: round robin keeps sending every other one to the dead replica.
    for (let i = 0; i < 4; i++) {
      assert.equal((await client.getCompilation(result.compilation.id)).status, 'succeeded');
    }
    await doomed.exited;
  } finally {
    await proxy.stop();
  }
  t.diagnostic(`502s by upstream: ${JSON.stringify([...proxy.badGateways])}; SDK retries: ${retries.length}`);
  // Only the dead replica failed calls, and some did.
  assert.deepEqual([...proxy.badGateways.keys()], [doomed.url]);
  const failedCalls = proxy.badGateways.get(doomed.url)!;
  assert.ok(failedCalls >= 1);
  // Each 502 cost one retry, and no call needed a second one (the retry went to the live replica).
  assert.equal(retries.length, failedCalls, JSON.stringify(retries, null, 2));
  assert.ok(
    retries.every((r) => r.attempt === 1),
    JSON.stringify(retries, null, 2),
  );
});
