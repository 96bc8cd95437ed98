// Issue 10, items 3 and 5: build hosts hold no authority, and concurrent twins never break a signature.
//
// 1. A build-only worker started with NO signing key and WRONG S3 credentials still builds: it reaches the model
//    and the bucket only through the presigned URLs its workflow grants; the orchestrator (a separate worker
//    process) re-hashes, signs and records. Without the change, the build host signed and uploaded itself: these
//    builds would fail.
// 2. Two compilations of one version and target at once, on a worker building two at a time: one artifact row,
//    one manifest object, and the artifact both answer with verifies on a device (kiln-device fetch). Without
//    write-once manifests, the second build overwrote the signed manifest in S3 and devices refused it for good.
// 3. A rogue build host (a Temporal worker of this test polling the target's queue, as an escaped job on a build
//    host could) hands back lies: a part whose bytes are not the ones it names, a manifest about another tenant,
//    another cache key, a lower CPU level. Each is refused with ARTIFACT_REJECTED before anything is signed or
//    stored, and its staged uploads are removed.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import { NativeConnection, Worker } from '@temporalio/worker';
import { loadKilnConfig } from '@kiln/config';
import type { ArtifactManifest } from '@kiln/contracts';
import { PORTABLE_SIGNATURE_DOMAIN, verifyArtifactSignature } from '@kiln/signing';
import { objectKeys } from '@kiln/storage';
import { findTarget, recipeHash, taskQueueFor } from '@kiln/targets';
import {
  BUILD_MODEL_UPDATE,
  BUILD_UPLOADS_UPDATE,
  type BuildModelGrant,
  type BuildTargetInput,
  type BuildTargetResult,
  type BuildUploadsGrant,
} from '@kiln/temporal';
import {
  api,
  type ApiProcess,
  createTenant,
  fixture,
  REPO_ROOT,
  startApi,
  storage,
  storedManifest,
  type TestTenant,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
} from '../support/kiln-harness.js';

const KILN_DEVICE = path.join(REPO_ROOT, '.kiln', 'venv', 'bin', 'kiln-device');
const MODEL = 'authority-mlp';

let app: ApiProcess;
let tenant: TestTenant;
let scratch: string;
let versionId: string;
let target: string;
const s3 = storage();

before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'kiln-authority-'));
  app = await startApi();
  tenant = await createTenant(app, 'authority');
  ({ versionId } = await uploadModel(app, tenant, MODEL, await fixture('mlp.pt2')));
});

after(async () => {
  await app?.stop();
  s3.client.destroy();
  await rm(scratch, { recursive: true, force: true });
});

async function compile(): Promise<string> {
  const res = await api(app)
    .post(`/v1/versions/${versionId}/compilations`)
    .set(tenant.auth)
    .send({ targets: [target] })
    .expect(201);
  return (res.body as { id: string }).id;
}

describe('build hosts hold no authority', () => {
  const orchestrator = new WorkerProcess({ KILN_WORKER_ROLES: 'orchestrator' });
  let builder: WorkerProcess;

  before(async () => {
    builder = new WorkerProcess({
      KILN_WORKER_ROLES: 'build',
      KILN_WORKER_BUILD_CONCURRENCY: '2',
      // What a build host is not given: any key, any S3 credential that works.
      KILN_SIGNING_KEY_FILE: path.join(scratch, 'no-such-key.pem'),
      KILN_SIGNING_PUBLIC_KEY_FILE: path.join(scratch, 'no-such-key.pub.pem'),
      KILN_SIGNING_KEY_CREATE: 'false',
      S3_ACCESS_KEY_ID: 'not-a-key',
      S3_SECRET_ACCESS_KEY: 'not-a-secret',
    });
    await Promise.all([orchestrator.start(), builder.start()]);
    const served = builder.servedX86Targets();
    assert.ok(served.length > 0, `the build worker serves no x86 target:\n${builder.output}`);
    target = served[0];
  });

  after(async () => {
    await Promise.all([builder?.stop(), orchestrator.stop()]);
  });

  test('a build host without key or S3 credentials builds; two twins at once leave one verifiable artifact', async () => {
    const [first, second] = await Promise.all([compile(), compile()]);
    const done = await Promise.all([first, second].map((id) => waitForCompilation(app, tenant, id)));
    for (const c of done) assert.equal(c.status, 'succeeded', JSON.stringify(c, null, 2));
    // Both really built (neither was answered from the cache): twins that raced to publish one cache key.
    assert.deepEqual(
      done.map((c) => c.builds[0].status),
      ['succeeded', 'succeeded'],
    );
    const artifactIds = done.map((c) => c.builds[0].artifact?.id);
    assert.ok(artifactIds[0]);
    assert.equal(artifactIds[1], artifactIds[0], 'both compilations answer with the one artifact of the cache key');
    assert.doesNotMatch(builder.output, /signing key|artifact-signing/i);

    const artifacts = (await api(app).get(`/v1/versions/${versionId}/artifacts`).set(tenant.auth).expect(200)).body as {
      id: string;
      cacheKey: string;
    }[];
    assert.equal(artifacts.length, 1);
    // One manifest object (a losing twin's copy is deleted), whose bytes are the ones signed.
    const manifest = await storedManifest<ArtifactManifest>(s3, tenant.id, artifacts[0].cacheKey);
    assert.equal(manifest.tenantId, tenant.id);
    assert.deepEqual(await s3.listKeys(`tenants/${tenant.id}/staging/`), [], 'staged uploads are cleaned up');

    // The artifact verifies on a device: kiln-device checks the signature over the manifest bytes and every part.
    const publicKey = ((await api(app).get('/v1/signing-keys').expect(200)).body as { publicKey: string }[])[0]
      .publicKey;
    const device = (
      await api(app)
        .post(`/v1/keys`)
        .set(tenant.auth)
        .send({ kind: 'device', models: [MODEL] })
        .expect(201)
    ).body as { key: string };
    const fetched = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        KILN_DEVICE,
        ['fetch', MODEL, '--json', '--api', app.url, '--no-progress'],
        {
          cwd: scratch,
          env: {
            ...process.env,
            KILN_DEVICE_TOKEN: device.key,
            KILN_SIGNING_PUBLIC_KEY: publicKey,
            KILN_CACHE_DIR: path.join(scratch, 'device-cache'),
          },
          timeout: 300_000,
        },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? -1) : 0, stdout, stderr }),
      );
    });
    assert.equal(fetched.code, 0, fetched.stderr);
    const out = JSON.parse(fetched.stdout) as { chosen: { kind: string; artifactId?: string } };
    assert.equal(out.chosen.kind, 'artifact', fetched.stdout);
  });

  test('an API holding the public key only serves what the orchestrator signed, the fallback included', async () => {
    // No private key file, none created: the API starts all the same (it never signs).
    const publicOnly = await startApi({
      KILN_SIGNING_KEY_FILE: path.join(scratch, 'api-has-no-key.pem'),
      KILN_SIGNING_KEY_CREATE: 'false',
    });
    try {
      const [publicKey] = (await api(publicOnly).get('/v1/signing-keys').expect(200)).body as { publicKey: string }[];
      const device = (
        await api(publicOnly)
          .post('/v1/keys')
          .set(tenant.auth)
          .send({ kind: 'device', models: [MODEL] })
          .expect(201)
      ).body as { key: string };
      const fingerprint = JSON.parse(
        await new Promise<string>((resolve, reject) =>
          execFile(KILN_DEVICE, ['fingerprint'], (err, stdout) =>
            err ? reject(new Error(err.message)) : resolve(stdout),
          ),
        ),
      ) as unknown;
      const resolved = (
        await api(publicOnly)
          .post('/v1/resolve')
          .set('Authorization', `Bearer ${device.key}`)
          .send({ model: MODEL, fingerprint })
          .expect(200)
      ).body as {
        artifact: { sha256: string; signature: string; manifestUrl: string } | null;
        fallback: { manifestUrl: string; manifestSha256: string; signature: string };
      };
      assert.ok(resolved.artifact);
      const bytes = Buffer.from(await (await fetch(resolved.artifact.manifestUrl)).arrayBuffer());
      assert.equal(createHash('sha256').update(bytes).digest('hex'), resolved.artifact.sha256);
      assert.ok(verifyArtifactSignature(publicKey.publicKey, bytes, resolved.artifact.signature));

      assert.notEqual(resolved.fallback.signature, '', 'the orchestrator signed the portable graph');
      const portable = Buffer.from(await (await fetch(resolved.fallback.manifestUrl)).arrayBuffer());
      assert.equal(createHash('sha256').update(portable).digest('hex'), resolved.fallback.manifestSha256);
      assert.ok(
        verifyArtifactSignature(publicKey.publicKey, portable, resolved.fallback.signature, PORTABLE_SIGNATURE_DOMAIN),
      );
      assert.ok(
        !verifyArtifactSignature(publicKey.publicKey, portable, resolved.fallback.signature),
        'a portable signature never passes for an artifact one',
      );
    } finally {
      await publicOnly.stop();
    }
  });
});

describe('a rogue build host is refused before anything is signed', () => {
  const orchestrator = new WorkerProcess({ KILN_WORKER_ROLES: 'orchestrator' });
  let nativeConnection: NativeConnection;
  let connection: Connection;
  let client: Client;
  let rogue: Worker;
  let running: Promise<void>;
  /** What the rogue host does with the next build it takes (then it has nothing planned: its retries fail). */
  let nextLie: ((input: BuildTargetInput) => Promise<BuildTargetResult>) | null = null;
  let template: ArtifactManifest;

  async function ask<R>(update: string, arg: unknown): Promise<R> {
    const { workflowId } = Context.current().info.workflowExecution!;
    return client.workflow.getHandle(workflowId).executeUpdate<R, [unknown]>(update, { args: [arg] });
  }

  /** A manifest that would pass every check for this build: the lies below each change one thing. */
  async function honest(input: BuildTargetInput, parts: ArtifactManifest['parts']): Promise<ArtifactManifest> {
    const model = await ask<BuildModelGrant>(BUILD_MODEL_UPDATE, { buildId: input.buildId });
    const t = findTarget(input.targetId)!;
    return {
      ...template,
      tenantId: input.tenantId,
      target: t.id,
      recipeHash: recipeHash(t.recipe),
      modelContentHash: model.contentHash,
      cacheKey: input.cacheKey,
      precision: t.recipe.precision ?? 'fp32',
      requires: { ...template.requires, x86Level: t.requires.x86Level, computeCapability: null },
      parts,
    };
  }

  before(async () => {
    const config = loadKilnConfig();
    template = JSON.parse(
      await readFile(path.join(REPO_ROOT, 'test/fixtures/manifests/cpu/linux-x86_64-v2.json'), 'utf8'),
    ) as ArtifactManifest;
    await orchestrator.start();
    nativeConnection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
    connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
    client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
    target = 'linux-x86_64-v2';
    rogue = await Worker.create({
      connection: nativeConnection,
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue: taskQueueFor(target),
      activities: {
        buildTarget: async (input: BuildTargetInput) => {
          const lie = nextLie;
          nextLie = null;
          if (!lie) throw new Error('no lie planned');
          return lie(input);
        },
      },
    });
    running = rogue.run();
  });

  after(async () => {
    rogue?.shutdown();
    await running;
    await nativeConnection?.close();
    await connection?.close();
    await orchestrator.stop();
  });

  /** A tenant of its own per lie: cache keys are per tenant, so nothing is cached and nothing shared. */
  async function victim(): Promise<{ tenant: TestTenant; versionId: string }> {
    const own = await createTenant(app, 'rogue-victim');
    return { tenant: own, versionId: (await uploadModel(app, own, 'rogue-mlp', await fixture('mlp.pt2'))).versionId };
  }

  async function refused(
    lie: (input: BuildTargetInput) => Promise<BuildTargetResult>,
  ): Promise<{ code: string; tenantId: string }> {
    const own = await victim();
    nextLie = lie;
    const res = await api(app)
      .post(`/v1/versions/${own.versionId}/compilations`)
      .set(own.tenant.auth)
      .send({ targets: [target] })
      .expect(201);
    const done = await waitForCompilation(app, own.tenant, (res.body as { id: string }).id);
    assert.equal(done.status, 'failed', JSON.stringify(done, null, 2));
    const artifacts = (await api(app).get(`/v1/versions/${own.versionId}/artifacts`).set(own.tenant.auth).expect(200))
      .body as unknown[];
    assert.deepEqual(artifacts, [], 'nothing was recorded');
    assert.deepEqual(await s3.listKeys(`tenants/${own.tenant.id}/staging/`), [], 'what the rogue staged is gone');
    return { code: done.builds[0].errorCode ?? '', tenantId: own.tenant.id };
  }

  test('a part whose bytes are not the ones it names', async () => {
    const claimed = Buffer.from('the code package the manifest names');
    const sent = Buffer.from('something else, of the same length!');
    assert.equal(claimed.length, sent.length);
    const claimedSha = createHash('sha256').update(claimed).digest('hex');
    const { code, tenantId } = await refused(async (input) => {
      const manifest = await honest(input, [{ role: 'code', sha256: claimedSha, size: claimed.length }]);
      const grant = await ask<BuildUploadsGrant>(BUILD_UPLOADS_UPDATE, {
        buildId: input.buildId,
        parts: [{ sha256: claimedSha, size: claimed.length }],
      });
      assert.equal(grant.uploads.length, 1);
      // The S3 server may refuse the body outright (its checksum header): either way nothing good is staged.
      await fetch(grant.uploads[0].url, { method: 'PUT', headers: grant.uploads[0].headers, body: sent });
      return { manifest, log: 'rogue' };
    });
    assert.equal(code, 'ARTIFACT_REJECTED');
    assert.equal(await s3.size(objectKeys.blob(tenantId, claimedSha)), null, 'no blob under the claimed hash');
  });

  test('a part it never uploaded', async () => {
    const sha = createHash('sha256').update(randomUUID()).digest('hex');
    const { code } = await refused(async (input) => ({
      manifest: await honest(input, [{ role: 'code', sha256: sha, size: 10 }]),
      log: 'rogue',
    }));
    assert.equal(code, 'ARTIFACT_REJECTED');
  });

  for (const [what, change] of [
    ['another tenant', (m: ArtifactManifest) => ({ ...m, tenantId: randomUUID() })],
    ['another cache key', (m: ArtifactManifest) => ({ ...m, cacheKey: 'f'.repeat(64) })],
    ['another model', (m: ArtifactManifest) => ({ ...m, modelContentHash: 'e'.repeat(64) })],
    [
      'a lower CPU level than the target',
      (m: ArtifactManifest) => ({ ...m, requires: { ...m.requires, x86Level: 1 } }),
    ],
    ['no parts', (m: ArtifactManifest) => ({ ...m, parts: [] })],
  ] as const) {
    test(`a manifest about ${what}`, async () => {
      const sha = createHash('sha256').update('x').digest('hex');
      const { code } = await refused(async (input) => ({
        manifest: change(await honest(input, [{ role: 'code', sha256: sha, size: 1 }])),
        log: 'rogue',
      }));
      assert.equal(code, 'ARTIFACT_REJECTED');
    });
  }

  test('the update that hands out model URLs refuses builds that are not running', async () => {
    const own = await victim();
    let refusal = '';
    const code = await (async () => {
      nextLie = async () => {
        try {
          await ask<BuildModelGrant>(BUILD_MODEL_UPDATE, { buildId: randomUUID() });
        } catch (err) {
          refusal = String((err as Error).cause ?? err);
        }
        throw new Error('gave up');
      };
      const res = await api(app)
        .post(`/v1/versions/${own.versionId}/compilations`)
        .set(own.tenant.auth)
        .send({ targets: [target] })
        .expect(201);
      const compilationId = (res.body as { id: string }).id;
      // The rogue's attempt throws: the build retries; one refusal is all this test needs.
      await waitForCompilation(app, own.tenant, compilationId, () => refusal !== '', 120_000);
      await api(app).post(`/v1/compilations/${compilationId}/cancel`).set(own.tenant.auth).expect(202);
      return refusal;
    })();
    assert.match(code, /is not running in this compilation/);
  });
});
