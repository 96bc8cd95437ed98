// The build worker's gate, with the real worker process (WorkerProcess, compiled, as `npm start` runs it): a
// worker whose sandbox is weakened — bubblewrap without the network namespace, a fake bubblewrap that sets up no
// namespace at all, no bubblewrap — polls no build queue (its self-test runs a job and looks from inside), the
// orchestrator still runs, and GET /v1/targets keeps saying no worker is online. The real sandbox serves its queues.
// The only way round is KILN_SANDBOX=insecure-local: then the worker builds, every build log line and the manifest
// say so, and the resolver gives the artifact to no device unless the request sets acceptInsecureBuilds.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { loadKilnConfig } from '@kiln/config';
import type { ArtifactManifest } from '@kiln/contracts';
import {
  api,
  createTenant,
  fixture,
  REPO_ROOT,
  startApi,
  storedManifest,
  storage,
  type TestTenant,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
  type ApiProcess,
} from '../support/kiln-harness.js';

const FIXTURES = path.join(import.meta.dirname, 'fixtures');
const WITHOUT_NETNS = path.join(FIXTURES, 'bwrap-without-netns');
const NO_NAMESPACES = path.join(FIXTURES, 'bwrap-no-namespaces');
const KILN_DEVICE = path.join(REPO_ROOT, '.kiln', 'venv', 'bin', 'kiln-device');

let app: ApiProcess;
let tenant: TestTenant;
const s3 = storage();

before(async () => {
  app = await startApi();
  tenant = await createTenant(app, 'gate');
});

after(async () => {
  await app?.close();
  s3.client.destroy();
});

interface TargetBody {
  id: string;
  workerOnline: boolean;
}

async function onlineTargets(): Promise<string[]> {
  const res = await api(app).get('/v1/targets').set(tenant.auth).expect(200);
  return (res.body as TargetBody[]).filter((t) => t.workerOnline).map((t) => t.id);
}

/**
 * Temporal lists a queue's pollers for a few minutes after they stop: wait until no worker of an earlier test
 * (or of `npm start`) is listed, so that what follows is about the worker under test alone.
 */
async function untilNoWorkerOnline(): Promise<void> {
  const deadline = Date.now() + 8 * 60_000;
  for (;;) {
    const online = await onlineTargets();
    if (online.length === 0) return;
    if (Date.now() > deadline) {
      assert.fail(`build queues still polled by another worker: ${online.join(', ')} (scripts/stack.sh stop worker)`);
    }
    await sleep(5_000);
  }
}

/** The worker's log without the logger's colours. */
function logOf(worker: WorkerProcess): string {
  // eslint-disable-next-line no-control-regex
  return worker.output.replace(/\x1B\[[0-9;]*m/g, '');
}

/** A weakened worker: it starts (the orchestrator runs), refuses every build queue, and nobody polls them. */
async function assertRefusesBuilds(worker: WorkerProcess, missing: RegExp[]): Promise<void> {
  await worker.start(300_000);
  try {
    const ready = /worker ready, polling: (.*)/.exec(logOf(worker))?.[1] ?? '';
    assert.equal(ready.trim(), 'kiln.orchestrator', logOf(worker));
    assert.match(logOf(worker), /REFUSING TO BUILD: the build sandbox does not hold/);
    assert.match(logOf(worker), /this worker serves NO build queue/);
    for (const wall of missing) assert.match(logOf(worker), wall);
    assert.doesNotMatch(logOf(worker), /serving linux-/);
    // While it runs, /v1/targets says so: no worker online for any target (asked several times).
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(await onlineTargets(), []);
      await sleep(2_000);
    }
  } finally {
    await worker.stop();
  }
}

describe('a build worker whose sandbox does not hold', () => {
  before(untilNoWorkerOnline, { timeout: 9 * 60_000 });

  test('bubblewrap without the network namespace: refuses every build queue, names the wall', async () => {
    await assertRefusesBuilds(new WorkerProcess({ KILN_SANDBOX_BWRAP: WITHOUT_NETNS }), [
      /SANDBOX WALL MISSING: network — the job shares the host's network namespace/,
      /reached 127\.0\.0\.1:\d+/,
    ]);
  });

  test('a fake bubblewrap that sets up no namespace: refuses, naming network, processes and files', async () => {
    await assertRefusesBuilds(new WorkerProcess({ KILN_SANDBOX_BWRAP: NO_NAMESPACES }), [
      /SANDBOX WALL MISSING: network/,
      /SANDBOX WALL MISSING: pid-namespace — the job shares the host's pid namespace/,
      /SANDBOX WALL MISSING: filesystem-allowlist — the job shares the host's mount namespace/,
    ]);
  });

  test('no bubblewrap at all: refuses without running a job', async () => {
    await assertRefusesBuilds(new WorkerProcess({ KILN_SANDBOX_BWRAP: '/nonexistent/bwrap' }), [
      /SANDBOX WALL MISSING: network — cannot be put up: bubblewrap \(bwrap\) is not installed/,
    ]);
  });
});

describe('a build worker whose sandbox holds', () => {
  test('serves its build queues after checking every wall from inside a job', async () => {
    const worker = new WorkerProcess();
    await worker.start(300_000);
    try {
      assert.match(logOf(worker), /build sandbox holds \(bubblewrap [\d.]+, every wall checked from inside a job\)/);
      for (const wall of ['network', 'pid-namespace', 'filesystem-allowlist', 'user', 'capabilities', 'no-new-privs']) {
        assert.match(logOf(worker), new RegExp(`sandbox wall ${wall}: holds`), wall);
      }
      for (const wall of ['memory-limit', 'pids-limit', 'rlimit-core', 'rlimit-nofile', 'timeout']) {
        assert.match(logOf(worker), new RegExp(`sandbox wall ${wall}: holds`), wall);
      }
      const served = [...logOf(worker).matchAll(/serving (linux-[\w-]+) \(/g)].map((m) => m[1]);
      assert.ok(served.length > 0, logOf(worker));
      let online: string[] = [];
      for (let i = 0; i < 15 && online.length < served.length; i++) {
        online = await onlineTargets();
        await sleep(1_000);
      }
      assert.deepEqual(online.sort(), served.sort());
    } finally {
      await worker.stop();
    }
  });
});

describe('the explicit opt-out KILN_SANDBOX=insecure-local', () => {
  test('builds loudly; the artifact says so and devices do not get it unless they ask', async () => {
    const target = 'linux-x86_64-v2';
    const worker = new WorkerProcess({
      KILN_SANDBOX_BWRAP: WITHOUT_NETNS,
      KILN_SANDBOX: 'insecure-local',
      KILN_WORKER_TARGETS: target,
    });
    await worker.start(300_000);
    try {
      assert.match(logOf(worker), /INSECURE: the build sandbox does NOT hold \(network/);
      assert.match(logOf(worker), new RegExp(`worker ready, polling: .*build\\.${target}`));

      const { modelId, versionId } = await uploadModel(app, tenant, 'insecure-mlp', await fixture('mlp.pt2'));
      const created = await api(app)
        .post(`/v1/versions/${versionId}/compilations`)
        .set(tenant.auth)
        .send({ targets: [target] })
        .expect(201);
      const compilationId = (created.body as { id: string }).id;
      const done = await waitForCompilation(app, tenant, compilationId);
      assert.equal(done.status, 'succeeded', JSON.stringify(done, null, 2));

      // Every line of the build log says it.
      const log = await api(app)
        .get(`/v1/compilations/${compilationId}/builds/${target}/log`)
        .set(tenant.auth)
        .expect(200);
      const lines = (log.body as { log: string }).log.trimEnd().split('\n');
      assert.ok(lines.length > 5);
      for (const line of lines) assert.ok(line.startsWith('[kiln:INSECURE-SANDBOX] '), line);
      assert.match(lines.join('\n'), /INSECURE: built without network/);
      // The log tells what happened in the job, not how the build host is laid out.
      assert.ok(!lines.join('\n').includes(REPO_ROOT), 'no host path of the Kiln checkout in the build log');

      // So does the signed manifest.
      const artifacts = await api(app).get(`/v1/versions/${versionId}/artifacts`).set(tenant.auth).expect(200);
      const [artifact] = artifacts.body as { id: string; cacheKey: string }[];
      const manifest = await storedManifest<ArtifactManifest>(s3, tenant.id, artifact.cacheKey);
      assert.equal(manifest.build.sandbox.mode, 'insecure-local');
      assert.deepEqual(
        (manifest.build.sandbox.missing as { wall: string }[]).map((m) => m.wall),
        ['network', 'clean-environment'],
      );

      // A device of this very machine (its own fingerprint) is not given it ...
      const device = await deviceToken();
      const fingerprint = await hostFingerprint();
      const resolve = (extra: Record<string, unknown>) =>
        api(app)
          .post('/v1/resolve')
          .set('Authorization', `Bearer ${device}`)
          .send({ model: modelId, fingerprint, ...extra })
          .expect(200);
      const refused = (await resolve({})).body as {
        artifact: unknown;
        rejected: { artifactId: string; reasons: string[] }[];
        fallback: { kind: string };
      };
      assert.equal(refused.artifact, null);
      assert.equal(refused.fallback.kind, 'portable');
      const why = refused.rejected.find((r) => r.artifactId === artifact.id);
      assert.ok(why, JSON.stringify(refused));
      assert.ok(
        why.reasons.some((r) => r.startsWith('built without the full build sandbox (KILN_SANDBOX=insecure-local')),
        JSON.stringify(why),
      );
      // ... unless the request asks for insecure builds.
      const accepted = (await resolve({ acceptInsecureBuilds: true })).body as { artifact: { id: string } | null };
      assert.equal(accepted.artifact?.id, artifact.id);
    } finally {
      await worker.stop();
    }
  });
});

async function deviceToken(): Promise<string> {
  const res = await api(app)
    .post(`/v1/admin/tenants/${tenant.id}/keys`)
    .set('Authorization', `Bearer ${loadKilnConfig().KILN_ADMIN_TOKEN}`)
    .send({ kind: 'device', models: ['*'] })
    .expect(201);
  return (res.body as { key: string }).key;
}

function hostFingerprint(): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(KILN_DEVICE, ['fingerprint'], { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kiln-device fingerprint failed: ${stderr}`));
      else resolve(JSON.parse(stdout) as Record<string, unknown>);
    });
  });
}
