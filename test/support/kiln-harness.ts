// Test harness for end-to-end tests against the real stack: the API runs in this process (Nest + supertest),
// build workers run as child processes (so a test can kill -9 one), each test file makes its own tenant.
import { type ChildProcess, spawn } from 'node:child_process';
import type { Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { loadKilnConfig } from '@kiln/config';
import { objectStorageFor } from '@kiln/core';
import type { ObjectStorage } from '@kiln/storage';
import { AppModule } from '../../apps/api/src/app.module.js';
import { setupApp } from '../../apps/api/src/setup-app.js';
import { APP_NODE_FLAGS, buildDist, distEntry } from '../../scripts/lib/build-dist.js';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const FIXTURES_DIR = process.env.KILN_FIXTURES_DIR ?? path.join(REPO_ROOT, '.kiln', 'fixtures');
export const X86_TARGETS = ['linux-x86_64-v2', 'linux-x86_64-v3', 'linux-x86_64-v4'];

/** supertest against the in-process API. */
export function api(app: INestApplication): ReturnType<typeof request> {
  return request(app.getHttpServer() as Server);
}

export async function fixture(name: string): Promise<Buffer> {
  return readFile(path.join(FIXTURES_DIR, name));
}

/** The API in local mode (the default admin token is accepted), as scripts/stack.sh runs it. */
export async function startApi(env: Record<string, string> = {}): Promise<INestApplication> {
  Object.assign(process.env, { KILN_LOCAL_MODE: 'true', ...env });
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app = moduleRef.createNestApplication();
  setupApp(app);
  await app.init();
  return app;
}

export function storage(): ObjectStorage {
  return objectStorageFor(loadKilnConfig());
}

export interface TestTenant {
  id: string;
  key: string;
  auth: { Authorization: string };
}

export async function createTenant(app: INestApplication, name = 'e2e'): Promise<TestTenant> {
  const res = await api(app)
    .post('/v1/admin/tenants')
    .set('Authorization', `Bearer ${loadKilnConfig().KILN_ADMIN_TOKEN}`)
    .send({ name: `${name}-${Date.now()}` })
    .expect(201);
  const body = res.body as { id: string; apiKey: { key: string } };
  return { id: body.id, key: body.apiKey.key, auth: { Authorization: `Bearer ${body.apiKey.key}` } };
}

let distBuilt: Promise<unknown> | undefined;

/** A build worker child process, started like `npm start` does (compiled, from dist/), ready once it logs "worker ready". */
export class WorkerProcess {
  private child?: ChildProcess;
  output = '';

  constructor(private readonly env: Record<string, string> = {}) {}

  async start(timeoutMs = 120_000): Promise<void> {
    this.output = '';
    // Compiled once per test file, so the workers run what was just edited.
    await (distBuilt ??= buildDist());
    const child = spawn(process.execPath, [...APP_NODE_FLAGS, distEntry('worker')], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const collect = (chunk: Buffer): void => {
      this.output += chunk.toString();
      if (process.env.KILN_TEST_VERBOSE) process.stderr.write(chunk);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const deadline = Date.now() + timeoutMs;
    while (!this.output.includes('worker ready')) {
      if (child.exitCode !== null) throw new Error(`worker exited early (${child.exitCode}):\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`worker not ready after ${timeoutMs} ms:\n${this.output}`);
      await sleep(200);
    }
  }

  /** kill -9: no graceful shutdown, in-flight activities are simply abandoned. */
  kill9(): void {
    this.child?.kill('SIGKILL');
  }

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

/**
 * The API as its own compiled process (dist/, as `npm start` runs it), for what only a real process shows: how it
 * starts or refuses to start, and where it listens. `exited` settles when the process ends.
 */
export class ApiProcess {
  private child?: ChildProcess;
  output = '';
  exited?: Promise<number | null>;

  constructor(private readonly env: Record<string, string> = {}) {}

  /** Resolves with "listening" once the API logs that it listens, or "exited" when it ended first. */
  async start(timeoutMs = 120_000): Promise<'listening' | 'exited'> {
    this.output = '';
    await (distBuilt ??= buildDist());
    const child = spawn(process.execPath, [...APP_NODE_FLAGS, distEntry('api')], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const collect = (chunk: Buffer): void => {
      this.output += chunk.toString();
      if (process.env.KILN_TEST_VERBOSE) process.stderr.write(chunk);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.output.includes('API listening')) return 'listening';
      if (child.exitCode !== null || child.signalCode !== null) return 'exited';
      if (Date.now() > deadline) throw new Error(`API neither listened nor exited in ${timeoutMs} ms:\n${this.output}`);
      await sleep(200);
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await this.exited;
  }
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
export async function waitForCompilation(
  app: INestApplication,
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

export async function uploadModel(
  app: INestApplication,
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
