// Per-tenant inductor caches end to end on the real stack (issue 17, item 3): a build stores its inductor cache for
// its scope (tenant, target, recipe hash), the next build of the scope restores it in its sandbox, and the manifest
// records both by sha256. Another tenant never gets it, even for the same model and target. A cache never changes
// the code: the reproduce path builds a second time without one and must give the same bytes, and another tenant's
// build of the same model without a cache gives the same code part.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ArtifactManifest } from '@kiln/contracts';
import { objectKeys } from '@kiln/storage';
import { findTarget, recipeHash } from '@kiln/targets';
import {
  addVersion,
  type ApiProcess,
  compileForTarget,
  createTenant,
  fixture,
  startApi,
  storage,
  type TestTenant,
  uploadModel,
  WorkerProcess,
} from './support/kiln-harness.js';

const TARGET = 'linux-x86_64-v2';
const RECIPE = recipeHash(findTarget(TARGET)!.recipe);

let app: ApiProcess;
const worker = new WorkerProcess();
const s3 = storage();

before(async () => {
  app = await startApi();
  await worker.start();
  assert.ok(worker.servedX86Targets().includes(TARGET), `the worker does not serve ${TARGET}:\n${worker.output}`);
});

after(async () => {
  await worker.stop();
  await app?.close();
  s3.client.destroy();
});

/** Compiles a version for TARGET (compileForTarget): its artifact, stored manifest and build log. */
const compile = (who: TestTenant, versionId: string, reproduce = false) =>
  compileForTarget(app, s3, who, versionId, TARGET, { reproduce });

const code = (parts: ArtifactManifest['parts']) => parts.find((p) => p.role === 'code')!;

/** The scope's latest cache as the orchestrator recorded it, or null. */
async function latest(tenantId: string): Promise<{ sha256: string; size: number } | null> {
  const key = objectKeys.inductorCacheLatest(tenantId, TARGET, RECIPE);
  return (await s3.size(key)) === null ? null : s3.getJson<{ sha256: string; size: number }>(key);
}

describe('inductor caches: per tenant, target and recipe; restored into the next build, never across tenants', () => {
  let tenantA: TestTenant;
  let modelA: string;
  let a1: Awaited<ReturnType<typeof compile>>;
  let a2: Awaited<ReturnType<typeof compile>>;

  test('tenant A first build: no cache to restore, stores one as the scope latest', async () => {
    tenantA = await createTenant(app, 'inductor-cache-a');
    const up = await uploadModel(app, tenantA, 'mlp', await fixture('mlp.pt2'));
    modelA = up.modelId;
    a1 = await compile(tenantA, up.versionId);
    const cache = a1.manifest.inductorCache;
    assert.ok(cache, 'the manifest has no inductorCache');
    assert.equal(cache.restored, null);
    assert.equal(cache.ignored, undefined);
    assert.ok(cache.stored, 'the first build stored no cache');
    assert.match(a1.log, new RegExp(`inductor cache ${cache.stored.sha256} uploaded`), a1.log);
    const pointer = await latest(tenantA.id);
    assert.equal(pointer?.sha256, cache.stored.sha256);
    assert.equal(pointer.size, cache.stored.bytes);
    const key = objectKeys.inductorCache(tenantA.id, TARGET, RECIPE, cache.stored.sha256);
    assert.equal((await s3.hashObject(key))?.sha256, cache.stored.sha256, 'the stored archive is not what it says');
    // Nothing is left in the build's staging prefix.
    assert.deepEqual(await s3.listKeys(`tenants/${tenantA.id}/staging/`), []);
  });

  test('tenant A second version (another model): restores the first build cache; rebuilt without it, same bytes', async () => {
    // reproduce: the second build of the same job runs in a fresh sandbox WITHOUT the cache, and the parts must be
    // byte-identical (else BUILD_NOT_REPRODUCIBLE): the restored cache did not change the code.
    // An archive an earlier build left, replaced since: the publish of this build sweeps it.
    const stale = objectKeys.inductorCache(tenantA.id, TARGET, RECIPE, 'f'.repeat(64));
    await s3.putBytes(stale, Buffer.from('an archive no build will be offered again'));
    a2 = await compile(tenantA, await addVersion(app, tenantA, modelA, await fixture('cnn.pt2')), true);
    const stored1 = a1.manifest.inductorCache!.stored!;
    const cache = a2.manifest.inductorCache;
    assert.ok(cache);
    assert.deepEqual(cache.restored, stored1, 'the second build did not restore the first build cache');
    assert.equal(cache.ignored, undefined);
    assert.match(a2.log, new RegExp(`inductor cache ${stored1.sha256} restored`), a2.log);
    assert.deepEqual(a2.manifest.reproduction, { checked: true, builds: 2, identical: true });
    assert.notEqual(code(a2.artifact.parts).sha256, code(a1.artifact.parts).sha256, 'another model, other code');
    // Latest wins: the scope now names this build's cache.
    assert.ok(cache.stored);
    assert.equal((await latest(tenantA.id))?.sha256, cache.stored.sha256);
    // Kept: this build's archive and the one it replaced (a build granted it may still be reading it); swept: the rest.
    const scope = objectKeys.inductorCacheLatest(tenantA.id, TARGET, RECIPE).replace(/latest\.json$/, '');
    assert.deepEqual(
      (await s3.listKeys(scope)).sort(),
      [
        objectKeys.inductorCache(tenantA.id, TARGET, RECIPE, stored1.sha256),
        objectKeys.inductorCache(tenantA.id, TARGET, RECIPE, cache.stored.sha256),
        objectKeys.inductorCacheLatest(tenantA.id, TARGET, RECIPE),
      ].sort(),
    );
  });

  test('tenant B, same model and target: no cache (the wall between tenants), and the same code part', async () => {
    const tenantB = await createTenant(app, 'inductor-cache-b');
    assert.ok(await latest(tenantA.id), 'tenant A has a cache for this target and recipe');
    const up = await uploadModel(app, tenantB, 'cnn', await fixture('cnn.pt2'));
    const b = await compile(tenantB, up.versionId);
    assert.equal(b.manifest.inductorCache?.restored, null, 'a cache crossed tenants');
    assert.doesNotMatch(b.log, /inductor cache \w+ restored/);
    // Built without any cache, the same model gives the code part tenant A's build gave with one.
    assert.equal(code(b.artifact.parts).sha256, code(a2.artifact.parts).sha256);
    assert.equal((await latest(tenantB.id))?.sha256, b.manifest.inductorCache?.stored?.sha256);
  });
});
