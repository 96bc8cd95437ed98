// Test harness for end-to-end tests against the real stack. The API and the build workers run as the compiled
// processes `npm start` runs (node dist/apps/<app>/src/main.js, scripts/lib/build-dist.ts), each a child process
// of the test (so a test can kill -9 one); supertest talks to the API over a real port. Each test file makes its
// own tenant.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { loadKilnConfig } from '@kiln/config';
import type { ArtifactManifest } from '@kiln/contracts';
import { freeLoopbackPort, objectStorageFor } from '@kiln/core';
import { type ObjectStorage, objectKeys } from '@kiln/storage';
import { APP_NODE_FLAGS, buildDist, distEntry } from '../../scripts/lib/build-dist.js';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

// The same settings as scripts/lib/env.sh gives the services: the environment wins, then .env, then .env.example's
// defaults. scripts/test.sh exports them already; a test file run on its own gets them here.
for (const file of ['.env', '.env.example']) {
  if (existsSync(path.join(REPO_ROOT, file))) process.loadEnvFile(path.join(REPO_ROOT, file));
}
export const FIXTURES_DIR = process.env.KILN_FIXTURES_DIR ?? path.join(REPO_ROOT, '.kiln', 'fixtures');
/** The x86 CPU targets of the catalog, lowest level first. A host serves those up to its own level (servedTargets). */
export const X86_TARGETS = ['linux-x86_64-v2', 'linux-x86_64-v3', 'linux-x86_64-v4'];

/** A build host's timing of one artifact: the speedup, and its 95 % interval when the manifest has one. */
export interface BuildHostTiming {
  speedup: number;
  speedupCi?: [number, number] | null;
}

/**
 * The resolver's expected choice for a device of this x86 level among x86 artifacts with these build-host
 * timings, by Kiln's documented rule (docs/decisions.md, "As fast"), written out here for the tests and never
 * asked of @kiln/matching, the library the resolver itself calls: the device runs the targets up to its level; of
 * those, the ones measured within 15 % of the fastest count as equally fast, and so do the ones whose interval
 * reaches the best low end of any interval (they cannot be told apart from the fastest: on a busy build host the
 * intervals are wide); the most specific (highest level) wins.
 */
export function expectedX86Choice(timings: Record<string, BuildHostTiming>, deviceLevel: number): string | null {
  const of = (t: string): BuildHostTiming => timings[t];
  const interval = (t: string): [number, number] | null => {
    const { speedup, speedupCi: ci } = of(t);
    // An interval that does not hold its own speedup is no interval (the resolver ignores it too).
    return ci && speedup > 0 && ci[0] > 0 && ci[0] <= speedup && ci[1] >= speedup ? ci : null;
  };
  const runnable = Object.keys(timings).filter((t) => x86LevelOf(t) <= deviceLevel);
  if (runnable.length === 0) return null;
  const fastest = Math.max(...runnable.map((t) => of(t).speedup));
  const bestLow = Math.max(0, ...runnable.map((t) => interval(t)?.[0] ?? of(t).speedup));
  const asFast = runnable.filter((t) => {
    const { speedup } = of(t);
    const ci = interval(t);
    return speedup === fastest || speedup * 1.15 > fastest || (ci !== null && speedup > 0 && ci[1] >= bestLow);
  });
  return asFast.reduce((best, t) => (x86LevelOf(t) > x86LevelOf(best) ? t : best));
}

/** "linux-x86_64-v3" → 3. */
export function x86LevelOf(targetId: string): number {
  const level = /^linux-x86_64-v(\d)$/.exec(targetId)?.[1];
  if (!level) throw new Error(`${targetId} is not an x86 CPU target`);
  return Number(level);
}

/** supertest against the API process. */
export function api(app: ApiProcess): ReturnType<typeof request> {
  return request(app.url);
}

export async function fixture(name: string): Promise<Buffer> {
  return readFile(path.join(FIXTURES_DIR, name));
}

let distBuilt: Promise<unknown> | undefined;

/** Compiles the services into dist/ once per test file, so the processes run what was just edited. */
function ensureDist(): Promise<unknown> {
  return (distBuilt ??= buildDist());
}

/** A free TCP port on 127.0.0.1 (the kernel's pick; released before the caller binds it). */
export const freePort = freeLoopbackPort;

/** A compiled child process of this test (an API or a build worker), with its output collected. */
abstract class ServiceProcess {
  protected child?: ChildProcess;
  output = '';

  /** The process id while it runs (benches sample its /proc entry). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  protected async spawnApp(app: 'api' | 'worker', env: Record<string, string>): Promise<ChildProcess> {
    this.output = '';
    await ensureDist();
    const child = spawn(process.execPath, [...APP_NODE_FLAGS, distEntry(app)], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const collect = (chunk: Buffer): void => {
      this.output += chunk.toString();
      if (process.env.KILN_TEST_VERBOSE) process.stderr.write(chunk);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    return child;
  }

  protected async waitFor(ready: () => boolean | Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await ready())) {
      const child = this.child;
      if (child && (child.exitCode !== null || child.signalCode !== null)) {
        throw new Error(`${what}: the process exited early (${child.exitCode ?? child.signalCode}):\n${this.output}`);
      }
      if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms:\n${this.output}`);
      await sleep(200);
    }
  }

  /** kill -9: no graceful shutdown, in-flight work is simply abandoned. */
  kill9(): void {
    this.child?.kill('SIGKILL');
  }

  /** SIGTERM, then SIGKILL after 40 s; resolves once the process is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 40_000);
    await exited;
    clearTimeout(timer);
  }
}

/** The compiled API (dist/apps/api), started as `npm start` starts it, on a port of its own. */
export class ApiProcess extends ServiceProcess {
  url = '';
  /** The API's /metrics (its own port, never the public one). */
  metricsUrl = '';
  /** Settles with the exit code when the process ends. */
  exited?: Promise<number | null>;

  constructor(private readonly env: Record<string, string> = {}) {
    super();
  }

  /**
   * Starts the API on its own port (KILN_API_PORT of the settings, else a free one). Resolves "listening" once
   * /v1/health answers 200, or "exited" when the process ended first (a test of a refused start reads `output`).
   */
  async start(timeoutMs = 120_000): Promise<'listening' | 'exited'> {
    const port = Number(this.env.KILN_API_PORT) || (await freePort());
    this.url = `http://127.0.0.1:${port}`;
    // Its own /metrics port too: several APIs run at once in the tests (and beside the stack's).
    const metricsPort = Number(this.env.KILN_API_METRICS_PORT) || (await freePort());
    this.metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    const child = await this.spawnApp('api', {
      ...this.env,
      KILN_API_PORT: String(port),
      KILN_API_METRICS_PORT: String(metricsPort),
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    let exited = false;
    await this.waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) return (exited = true);
        try {
          return (await fetch(`${this.url}/v1/health`)).status === 200;
        } catch {
          return false;
        }
      },
      'API',
      timeoutMs,
    );
    return exited ? 'exited' : 'listening';
  }

  /** Same as stop(): the name the tests' `after` hooks use. */
  close(): Promise<void> {
    return this.stop();
  }
}

/** Starts the compiled API with these settings added to the test's environment; ready once /v1/health says 200. */
export async function startApi(env: Record<string, string> = {}): Promise<ApiProcess> {
  // Local mode (the default admin token is accepted), as scripts/stack.sh runs it.
  const app = new ApiProcess({ KILN_LOCAL_MODE: 'true', ...env });
  if ((await app.start()) === 'exited') throw new Error(`the API exited while starting:\n${app.output}`);
  return app;
}

export function storage(): ObjectStorage {
  return objectStorageFor(loadKilnConfig());
}

/** An S3 object's bytes, whole (test objects are small). */
export async function objectBytes(s3: ObjectStorage, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await s3.getStream(key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The manifest S3 holds for an artifact's cache key. Manifests are written once under their own sha256
 * (objectKeys.manifest); a build publishes exactly one per cache key unless a concurrent twin lost the race, and
 * the loser's copy is deleted: so exactly one is expected here.
 */
export async function storedManifest<T>(s3: ObjectStorage, tenantId: string, cacheKey: string): Promise<T> {
  const keys = await s3.listKeys(objectKeys.manifestsOf(tenantId, cacheKey));
  if (keys.length !== 1) throw new Error(`expected one manifest for ${cacheKey}, S3 holds ${JSON.stringify(keys)}`);
  return s3.getJson<T>(keys[0]);
}

export interface TestTenant {
  id: string;
  key: string;
  auth: { Authorization: string };
}

export async function createTenant(app: ApiProcess, name = 'e2e'): Promise<TestTenant> {
  const res = await api(app)
    .post('/v1/admin/tenants')
    .set('Authorization', `Bearer ${loadKilnConfig().KILN_ADMIN_TOKEN}`)
    .send({ name: `${name}-${Date.now()}` })
    .expect(201);
  const body = res.body as { id: string; apiKey: { key: string } };
  return { id: body.id, key: body.apiKey.key, auth: { Authorization: `Bearer ${body.apiKey.key}` } };
}

/** A build worker child process, started like `npm start` does (compiled, from dist/), ready once it logs "worker ready". */
export class WorkerProcess extends ServiceProcess {
  /** The worker's /metrics (its own port: several workers run at once in the tests, and beside the stack's). */
  metricsUrl = '';

  constructor(private readonly env: Record<string, string> = {}) {
    super();
  }

  async start(timeoutMs = 120_000): Promise<void> {
    const metricsPort = Number(this.env.KILN_WORKER_METRICS_PORT) || (await freePort());
    this.metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    await this.spawnApp('worker', { ...this.env, KILN_WORKER_METRICS_PORT: String(metricsPort) });
    await this.waitFor(() => this.output.includes('worker ready'), 'worker', timeoutMs);
  }

  /**
   * The x86 CPU targets this worker polls, in catalog order, as its own host probe decided them (its log says
   * "serving <target> (…)"): every x86 level up to the host's, or up to KILN_X86_LEVEL_CAP. Tests build for these,
   * so they pass on any x86-64 host from v2 up.
   */
  servedX86Targets(): string[] {
    const served = new Set([...this.output.matchAll(/serving (\S+) \(\d+ at a time\)/g)].map((m) => m[1]));
    return X86_TARGETS.filter((t) => served.has(t));
  }
}

/**
 * The targets some worker polls now, as GET /v1/targets reports them (`workerOnline`), in catalog order. Benches
 * build for these instead of assuming a CPU. (Temporal remembers a poller for a few minutes after its worker
 * stopped; on one machine those are the same host's targets.)
 */
export async function onlineTargets(app: ApiProcess, tenant: TestTenant): Promise<string[]> {
  const res = await api(app).get('/v1/targets').set(tenant.auth).expect(200);
  return (res.body as { id: string; workerOnline: boolean }[]).filter((t) => t.workerOnline).map((t) => t.id);
}

export interface CompilationBody {
  id: string;
  status: string;
  builds: {
    targetId: string;
    status: string;
    phase: string | null;
    attempt: number;
    errorCode: string | null;
    errorMessage: string | null;
    artifact: { id: string } | null;
    startedAt: string | null;
  }[];
  warnings: { targetId: string; code: string; message: string }[];
}

/** Polls a compilation until `done` says so (or the time runs out, with the last state in the error). */
/** A device token of `tenant` (the admin API), enrolled for every model of the tenant. */
export async function deviceToken(app: ApiProcess, tenant: TestTenant): Promise<string> {
  const res = await api(app)
    .post(`/v1/admin/tenants/${tenant.id}/keys`)
    .set('Authorization', `Bearer ${loadKilnConfig().KILN_ADMIN_TOKEN}`)
    .send({ kind: 'device', models: ['*'] })
    .expect(201);
  return (res.body as { key: string }).key;
}

export async function waitForCompilation(
  app: ApiProcess,
  tenant: TestTenant,
  compilationId: string,
  done: (c: CompilationBody) => boolean = (c) => ['succeeded', 'partial', 'failed', 'cancelled'].includes(c.status),
  timeoutMs = 20 * 60_000,
): Promise<CompilationBody> {
  const deadline = Date.now() + timeoutMs;
  let last: CompilationBody | undefined;
  for (;;) {
    const res = await api(app).get(`/v1/compilations/${compilationId}`).set(tenant.auth).expect(200);
    last = res.body as CompilationBody;
    if (done(last)) return last;
    if (Date.now() > deadline) throw new Error(`compilation not done in time: ${JSON.stringify(last, null, 2)}`);
    await sleep(1000);
  }
}

/** A new version of an existing model (POST /v1/models/:id/versions); returns its id. */
export async function addVersion(
  app: ApiProcess,
  tenant: TestTenant,
  modelId: string,
  file: Buffer,
  filename = 'next.pt2',
): Promise<string> {
  const res = await api(app)
    .post(`/v1/models/${modelId}/versions?filename=${filename}`)
    .set(tenant.auth)
    .set('Content-Type', 'application/octet-stream')
    .send(file)
    .expect(201);
  return (res.body as { id: string }).id;
}

/** An artifact as GET /v1/versions/:id/artifacts lists it (the fields the e2e tests read). */
export interface ArtifactBody {
  id: string;
  targetId: string;
  cacheKey: string;
  parts: ArtifactManifest['parts'];
  reproduction: ArtifactManifest['reproduction'] | null;
  reuse: ArtifactManifest['reuse'] | null;
}

/**
 * Compiles a version for one target and waits until its build succeeded; returns the artifact as the API lists it,
 * its manifest as stored in S3 and its build log.
 */
export async function compileForTarget(
  app: ApiProcess,
  s3: ObjectStorage,
  tenant: TestTenant,
  versionId: string,
  target: string,
  options: { reproduce?: boolean } = {},
): Promise<{ artifact: ArtifactBody; manifest: ArtifactManifest; log: string }> {
  const created = await api(app)
    .post(`/v1/versions/${versionId}/compilations`)
    .set(tenant.auth)
    .send({ targets: [target], ...(options.reproduce ? { reproduce: true } : {}) })
    .expect(201);
  const id = (created.body as CompilationBody).id;
  const done = await waitForCompilation(app, tenant, id);
  const build = done.builds[0];
  assert.equal(build.status, 'succeeded', `${build.errorCode} ${build.errorMessage}`);
  const list = await api(app).get(`/v1/versions/${versionId}/artifacts`).set(tenant.auth).expect(200);
  const artifact = (list.body as ArtifactBody[]).find((a) => a.targetId === target)!;
  const manifest = await storedManifest<ArtifactManifest>(s3, tenant.id, artifact.cacheKey);
  const log = await api(app).get(`/v1/compilations/${id}/builds/${target}/log`).set(tenant.auth).expect(200);
  return { artifact, manifest, log: (log.body as { log: string }).log };
}

export async function uploadModel(
  app: ApiProcess,
  tenant: TestTenant,
  name: string,
  file: Buffer,
): Promise<{ modelId: string; versionId: string; body: Record<string, unknown> }> {
  const model = await api(app).post('/v1/models').set(tenant.auth).send({ name }).expect(201);
  const modelId = (model.body as { id: string }).id;
  const version = await api(app)
    .post(`/v1/models/${modelId}/versions?filename=${name}.pt2`)
    .set(tenant.auth)
    .set('Content-Type', 'application/octet-stream')
    .send(file)
    .expect(201);
  return { modelId, versionId: (version.body as { id: string }).id, body: version.body as Record<string, unknown> };
}
