// Weights-only updates end to end on the real stack (issue 17, item 2): the next version of a model, with other
// weight values, is built from the code part of the previous version's artifact plus a new weights blob. The
// orchestrator picks the donor (same tenant, same model, an earlier version, same target and recipe), the build host
// downloads it through a presigned GET from its workflow, and the real driver proves the generated code equal before
// it reuses it. Another tenant's artifacts are never a donor, even for the same bytes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { ArtifactManifest } from '@kiln/contracts';
import { objectKeys } from '@kiln/storage';
import {
  addVersion,
  api,
  type ApiProcess,
  compileForTarget,
  createTenant,
  deviceToken,
  fixture,
  REPO_ROOT,
  startApi,
  storage,
  type TestTenant,
  uploadModel,
  WorkerProcess,
} from './support/kiln-harness.js';

const TARGET = 'linux-x86_64-v2';

let app: ApiProcess;
let tenant: TestTenant;
const worker = new WorkerProcess();
const s3 = storage();

before(async () => {
  app = await startApi();
  tenant = await createTenant(app, 'weights-update');
  await worker.start();
  assert.ok(worker.servedX86Targets().includes(TARGET), `the worker does not serve ${TARGET}:\n${worker.output}`);
});

after(async () => {
  await worker.stop();
  await app?.close();
  s3.client.destroy();
});

/** Compiles a version for TARGET (compileForTarget): its artifact, stored manifest and build log. */
const compile = (who: TestTenant, versionId: string) => compileForTarget(app, s3, who, versionId, TARGET);

const code = (parts: ArtifactManifest['parts']) => parts.find((p) => p.role === 'code')!;
const weights = (parts: ArtifactManifest['parts']) => parts.find((p) => p.role === 'weights')!;

describe('weights-only update: v2 of a model reuses the code part of v1', () => {
  let v1: Awaited<ReturnType<typeof compile>>;
  let modelId: string;

  test('v1 is a full build, with no donor', async () => {
    const up = await uploadModel(app, tenant, 'mlp', await fixture('mlp.pt2'));
    modelId = up.modelId;
    v1 = await compile(tenant, up.versionId);
    assert.equal(v1.manifest.reuse, undefined, 'a first version has no donor');
    assert.ok(weights(v1.artifact.parts), 'the v1 artifact keeps its weights in their own part');
  });

  test('v2 (other weights) gets v1 code part byte for byte and a new weights part, verified', async () => {
    const v2 = await compile(tenant, await addVersion(app, tenant, modelId, await fixture('mlp-retrained.pt2')));
    assert.notEqual(v2.manifest.modelContentHash, v1.manifest.modelContentHash);
    assert.equal(code(v2.artifact.parts).sha256, code(v1.artifact.parts).sha256, 'the code part was not reused');
    assert.notEqual(weights(v2.artifact.parts).sha256, weights(v1.artifact.parts).sha256, 'the weights are v1 own');
    assert.deepEqual(v2.manifest.reuse && { ...v2.manifest.reuse, codegenSeconds: undefined }, {
      codeFrom: code(v1.artifact.parts).sha256,
      donorCacheKey: v1.artifact.cacheKey,
      reused: true,
      fallback: null,
      codegenSeconds: undefined,
    });
    assert.equal(v2.manifest.verification.passed, true);
    // The API's artifact list carries it (the dashboard says "code reused").
    assert.deepEqual(v2.artifact.reuse, v2.manifest.reuse);
    assert.equal(v1.artifact.reuse, null);
    assert.match(v2.log, /reusing it with the new weights/, v2.log);
    // The code part is stored once, shared by both artifacts.
    const c = code(v2.artifact.parts);
    assert.equal(await s3.size(objectKeys.blob(tenant.id, c.sha256)), c.size);
  });

  test('a device that holds v1 downloads only the tensors a head fine-tune changed (issue 17, item 1)', async () => {
    // v3 re-initialises only the last layer: its weights part lists six tensors, four with v1's bytes.
    const v3 = await compile(tenant, await addVersion(app, tenant, modelId, await fixture('mlp-head-tuned.pt2')));
    assert.equal(v3.manifest.reuse?.reused, true, v3.log);
    const part = weights(v3.manifest.parts);
    const held = new Set(weights(v1.manifest.parts).tensors!.map((t) => t.sha256));
    const changed = part.tensors!.filter((t) => !held.has(t.sha256));
    assert.deepEqual(
      changed.map((t) => t.name),
      ['net_4_weight', 'net_4_bias'],
    );
    const token = await deviceToken(app, tenant);
    const signingKey = ((await api(app).get('/v1/signing-keys').expect(200)).body as { publicKey: string }[])[0];
    const cache = await mkdtemp(path.join(tmpdir(), 'kiln-tensor-delta-'));
    try {
      const fetchVersion = async (version: number) => {
        const { stdout } = await promisify(execFile)(
          path.join(REPO_ROOT, '.kiln', 'venv', 'bin', 'kiln-device'),
          ['fetch', 'mlp', '--version', String(version), '--json', '--no-progress', '--api', app.url],
          {
            env: {
              ...process.env,
              KILN_DEVICE_TOKEN: token,
              KILN_SIGNING_PUBLIC_KEY: signingKey.publicKey,
              KILN_CACHE_DIR: cache,
            },
            timeout: 300_000,
          },
        );
        const out = JSON.parse(stdout) as {
          chosen: { targetId?: string };
          verified: { parts: { role: string; sha256: string; downloadedBytes: number; tensorsFromCache: number }[] };
        };
        assert.equal(out.chosen.targetId, TARGET);
        return out.verified.parts.find((p) => p.role === 'weights')!;
      };
      const first = await fetchVersion(1);
      assert.deepEqual([first.downloadedBytes, first.tensorsFromCache], [weights(v1.manifest.parts).size, 0]);
      const update = await fetchVersion(3);
      assert.equal(update.sha256, part.sha256, 'the assembled part is the signed one (its sha256 was checked)');
      // The two changed tensors are neighbours: one Range request, the padding between them included.
      const last = changed[changed.length - 1];
      assert.deepEqual(
        [update.downloadedBytes, update.tensorsFromCache],
        [last.offset + last.size - changed[0].offset, 4],
      );
      assert.ok(update.downloadedBytes < part.size / 30, `${update.downloadedBytes} of ${part.size} bytes`);
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  });

  test('another tenant with the same bytes never gets this tenant code as a donor', async () => {
    // Its v1 has the content of the first tenant's v1 (which has an artifact), but is not compiled: its v2 has no
    // donor of its own, and the first tenant's artifacts must not stand in.
    const other = await createTenant(app, 'weights-update-other');
    const up = await uploadModel(app, other, 'mlp', await fixture('mlp.pt2'));
    const v2 = await compile(other, await addVersion(app, other, up.modelId, await fixture('mlp-retrained.pt2')));
    assert.equal(v2.manifest.reuse, undefined, 'a donor was offered across tenants');
    assert.doesNotMatch(v2.log, /reusing it with the new weights|code generation only/);
  });
});
