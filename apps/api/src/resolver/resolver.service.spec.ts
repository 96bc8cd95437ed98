// ResolverService's rules, in isolation: real PostgreSQL (a throwaway database) and the real S3 of the stack (it only
// presigns), portable signing a recorder. Which version (explicit, channel, latest), which artifact for which device,
// the portable graph with reasons when none fits, quarantine from fleet evidence, and the model scope of a token.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KilnConfig, loadKilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { objectStorageFor } from '@kiln/core';
import {
  ArtifactEntity,
  ChannelEntity,
  FleetEvidenceEntity,
  ModelEntity,
  ModelVersionEntity,
  RolloutEntity,
} from '@kiln/database';
import {
  AVX2_LAPTOP_FINGERPRINT,
  AVX512_SERVER_FINGERPRINT,
  deviceClassOf,
  type DeviceFingerprint,
  GRAVITON_FINGERPRINT,
  validateFingerprint,
} from '@kiln/matching';
import type { ObjectStorage } from '@kiln/storage';
import { cacheKey, findTarget, recipeHash } from '@kiln/targets';
import type { PortableSigningService } from '../portable-signing/portable-signing.service.js';
import { createServiceDatabase, seedModel, type ServiceDatabase, V2_MANIFEST } from '../testing/service-database.js';
import type { ResolveRequestDto } from './resolver.dto.js';
import { ResolverService } from './resolver.service.js';
import { ResolutionCache } from './resolution-cache.js';

const V2 = 'linux-x86_64-v2';

let db: ServiceDatabase;
let storage: ObjectStorage;
let service: ResolverService;
const signingRequested: string[] = [];
let m: { tenantId: string; modelId: string; versionIds: string[] };
let artifactId: string;

before(async () => {
  db = await createServiceDatabase();
  const { ds } = db;
  storage = objectStorageFor(loadKilnConfig());
  service = newService();
  // Version 1 has a signed x86-64-v2 artifact; version 2 (the latest) has none.
  m = await seedModel(ds, 2);
  const v1 = await ds.getRepository(ModelVersionEntity).findOneByOrFail({ id: m.versionIds[0] });
  const recipe = findTarget(V2)!.recipe;
  const key = cacheKey({ tenantId: m.tenantId, modelContentHash: v1.contentHash, recipe });
  const artifact = await ds.getRepository(ArtifactEntity).save({
    tenantId: m.tenantId,
    cacheKey: key,
    modelContentHash: v1.contentHash,
    targetId: V2,
    recipeHash: recipeHash(recipe),
    manifestKey: `tenants/${m.tenantId}/manifests/${key}/x.json`,
    manifest: { ...V2_MANIFEST, tenantId: m.tenantId, cacheKey: key, modelContentHash: v1.contentHash },
    manifestSha256: 'd'.repeat(64),
    signature: 'signed',
    signingKeyId: 'key',
    sizeBytes: 1,
  });
  artifactId = artifact.id;
  await ds
    .getRepository(ChannelEntity)
    .save({ tenantId: m.tenantId, modelId: m.modelId, name: 'prod', versionId: v1.id });
});

/** A resolver with an empty cache (its cached context would otherwise keep evidence read earlier). */
function newService(): ResolverService {
  const { ds } = db;
  const signing = {
    requestSignature: (v: { id: string }) => {
      signingRequested.push(v.id);
      return Promise.resolve();
    },
  } as unknown as PortableSigningService;
  return new ResolverService(
    ds.getRepository(ModelEntity),
    ds.getRepository(ModelVersionEntity),
    ds.getRepository(ChannelEntity),
    ds.getRepository(ArtifactEntity),
    ds.getRepository(FleetEvidenceEntity),
    ds.getRepository(RolloutEntity),
    storage,
    signing,
    Object.assign(new KilnConfig(), { KILN_QUARANTINE_MIN_FAILURES: 3, KILN_QUARANTINE_FAILURE_RATE: 0.2 }),
    new ResolutionCache(),
  );
}

after(async () => {
  await db?.destroy();
  storage?.client.destroy();
});

const ask = (fingerprint: DeviceFingerprint, extra: Partial<ResolveRequestDto> = {}, scope = ['*']) =>
  service.resolve(m.tenantId, { model: 'm', fingerprint, ...extra }, scope);

async function refused(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof KilnError && err.code === code);
}

test('a channel picks its version; the device gets the artifact it can run, with a presigned part per blob', async () => {
  const answer = await ask(AVX2_LAPTOP_FINGERPRINT, { channel: 'prod' });
  assert.deepEqual([answer.version.number, answer.version.selectedBy, answer.version.channel], [1, 'channel', 'prod']);
  assert.equal(answer.artifact?.id, artifactId);
  assert.equal(answer.artifact?.targetId, V2);
  assert.equal(answer.artifact?.parts.length, V2_MANIFEST.parts.length);
  assert.match(answer.fallback.url, /^http/);
  assert.ok(signingRequested.includes(m.versionIds[0]), 'an unsigned portable graph is sent to be signed');
});

test('no version and no channel: the latest, which has no artifact, is the portable graph', async () => {
  const answer = await ask(AVX2_LAPTOP_FINGERPRINT);
  assert.deepEqual([answer.version.number, answer.version.selectedBy, answer.artifact], [2, 'latest', null]);
  assert.equal((await ask(AVX2_LAPTOP_FINGERPRINT, { version: 1 })).artifact?.id, artifactId);
});

test('a device the artifact cannot run gets the portable graph, and the reason', async () => {
  const answer = await ask(GRAVITON_FINGERPRINT, { version: 1 });
  assert.equal(answer.artifact, null);
  assert.equal(answer.rejected.length, 1);
  assert.match(JSON.stringify(answer.rejected[0]), /arch|aarch64/);
});

test('fleet evidence past the quarantine threshold withholds the artifact from that device class only', async () => {
  const checked = validateFingerprint(AVX2_LAPTOP_FINGERPRINT);
  assert.ok(checked.ok);
  const deviceClass = deviceClassOf(checked.value);
  await db.ds.getRepository(FleetEvidenceEntity).save({
    tenantId: m.tenantId,
    subject: artifactId,
    deviceClass: deviceClass.key,
    deviceClassLabel: deviceClass.label,
    modelId: m.modelId,
    artifactId,
    reports: 10,
    failures: 5,
    failureCodes: { LOAD_FAILED: 5 },
    sampleFingerprint: {},
    firstReportAt: new Date(),
    lastReportAt: new Date(),
  });
  service = newService();
  const answer = await ask(AVX2_LAPTOP_FINGERPRINT, { version: 1 });
  assert.equal(answer.artifact, null, JSON.stringify(answer.rejected));
  assert.match(JSON.stringify(answer.rejected), /quarantined/);
  // Another class (an AVX-512 server) still gets it.
  assert.equal((await ask(AVX512_SERVER_FINGERPRINT, { version: 1 })).artifact?.id, artifactId);
});

test('bad fingerprints, unknown models and channels, and models outside a token’s scope are refused', async () => {
  await refused(
    ask({ ...AVX2_LAPTOP_FINGERPRINT, os: 'plan9' } as unknown as DeviceFingerprint),
    ErrorCode.VALIDATION_FAILED,
  );
  await refused(
    service.resolve(m.tenantId, { model: 'nope', fingerprint: AVX2_LAPTOP_FINGERPRINT }, ['*']),
    ErrorCode.NOT_FOUND,
  );
  await refused(ask(AVX2_LAPTOP_FINGERPRINT, { channel: 'beta' }), ErrorCode.NOT_FOUND);
  await refused(ask(AVX2_LAPTOP_FINGERPRINT, {}, ['other-model']), ErrorCode.MODEL_NOT_ENROLLED);
  const other = await seedModel(db.ds, 1);
  await refused(
    service.resolve(other.tenantId, { model: 'm', channel: 'prod', fingerprint: AVX2_LAPTOP_FINGERPRINT }, ['*']),
    ErrorCode.NOT_FOUND,
  );
});
