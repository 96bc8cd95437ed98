// Device reports ingested per second through POST /v1/telemetry, against a bare batched INSERT of the same rows into a
// plain table, same machine, same run:
//   node --import @swc-node/register/esm-register bench/telemetry-ingest.ts [--reports 20000] [--concurrency 8]
// Needs the local stack (PostgreSQL, Temporal, S3): scripts/stack.sh start. Starts its own API (compiled, as npm start
// runs it), seeds a tenant with one model version and one signed artifact row, then sends batches of 100 reports (one
// device per batch, 5 device classes, a few failing) with a device token, `concurrency` requests at a time. The
// baseline sends the very same rows as `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`, 100 per
// statement, over the same number of connections, into an unpartitioned copy of the raw table: what storing the
// reports costs with nothing else (no HTTP, no validation, no tenancy checks, no partition routing, no rollups).
// A second pass re-sends every API batch (a device whose answers were lost): all duplicates, nothing counted twice.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import type { ArtifactManifest } from '@kiln/contracts';
import { kilnDataSourceOptions } from '@kiln/database';
import { AVX2_LAPTOP_FINGERPRINT, type DeviceFingerprint } from '@kiln/matching';
import { ArtifactSigner } from '@kiln/signing';
import { createHash } from 'node:crypto';
import { api, createTenant, REPO_ROOT, startApi, uploadModel } from '../test/support/kiln-harness.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const TOTAL = arg('reports', 20_000);
const CONCURRENCY = arg('concurrency', 8);
const BATCH = 100;
const config = loadKilnConfig();

/** A UUIDv7: the server takes nothing else as a report id (and places it in its month's partition by it). */
function uuid7(): string {
  const rand = randomUUID().replace(/-/g, '');
  const variant = ((parseInt(rand[0], 16) & 0x3) | 0x8).toString(16);
  const h = `${Date.now().toString(16).padStart(12, '0')}7${rand.slice(1, 4)}${variant}${rand.slice(4, 19)}`;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

async function pool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++]);
    }),
  );
  return (performance.now() - started) / 1000;
}

const app = await startApi();
const db = new DataSource(kilnDataSourceOptions(config.DATABASE_URL, { logging: false, extra: { max: CONCURRENCY } }));
try {
  const tenant = await createTenant(app, 'bench-telemetry');
  const admin = { Authorization: `Bearer ${config.KILN_ADMIN_TOKEN}` };
  const token = (
    (await api(app).post(`/v1/admin/tenants/${tenant.id}/keys`).set(admin).send({ kind: 'device' }).expect(201))
      .body as { key: string }
  ).key;
  const { modelId, versionId, body } = await uploadModel(
    app,
    tenant,
    'bench-telemetry-mlp',
    await readFile(path.join(REPO_ROOT, '.kiln/fixtures/mlp.pt2')),
  );
  const contentHash = (body as { contentHash: string }).contentHash;

  // One artifact of the version (a real manifest, re-keyed and signed as a worker does), so reports carry evidence.
  await db.initialize();
  const manifest = JSON.parse(
    await readFile(path.join(REPO_ROOT, 'test/fixtures/manifests/cpu/linux-x86_64-v2.json'), 'utf8'),
  ) as ArtifactManifest;
  const cacheKey = createHash('sha256').update(`${tenant.id}/bench-telemetry`).digest('hex');
  const bytes = Buffer.from(JSON.stringify({ ...manifest, cacheKey, modelContentHash: contentHash }, null, 2));
  const signer = await ArtifactSigner.fromFile(path.resolve(REPO_ROOT, config.KILN_SIGNING_KEY_FILE), true);
  const { signature, keyId } = signer.sign(bytes);
  const [{ id: artifactId }] = await db.query<{ id: string }[]>(
    `INSERT INTO artifacts (tenant_id, cache_key, model_content_hash, target_id, recipe_hash, manifest_key, manifest,
                            size_bytes, manifest_sha256, signature, signing_key_id)
     VALUES ($1, $2, $3, 'linux-x86_64-v2', $4, $5, $6, 1000, $7, $8, $9) RETURNING id`,
    [
      tenant.id,
      cacheKey,
      contentHash,
      manifest.recipeHash,
      `tenants/${tenant.id}/manifests/${cacheKey}.json`,
      bytes.toString(),
      createHash('sha256').update(bytes).digest('hex'),
      signature,
      keyId,
    ],
  );

  // The batches: one device each, five CPU models (five classes), 2 % of runs failing to load.
  const classes: DeviceFingerprint[] = Array.from({ length: 5 }, (_, i) => ({
    ...AVX2_LAPTOP_FINGERPRINT,
    cpu: { ...AVX2_LAPTOP_FINGERPRINT.cpu, model: `Bench CPU ${i}` },
  }));
  const batches = Array.from({ length: Math.ceil(TOTAL / BATCH) }, (_, b) => ({
    deviceId: randomUUID(),
    fingerprint: classes[b % classes.length],
    runtimeVersion: 'bench',
    reports: Array.from({ length: BATCH }, (_, r) => {
      const failed = (b * BATCH + r) % 50 === 0;
      return {
        reportId: uuid7(),
        modelId,
        versionId,
        artifactId,
        ran: failed ? 'portable' : 'artifact',
        outcome: failed ? 'failed' : 'ok',
        ...(failed ? { errorCode: 'LOAD_FAILED', failureStage: 'load' } : {}),
        latency: [{ inputShapes: [[8, 64]], artifactMs: 0.4 + (r % 7) * 0.01, portableMs: 1.1, runs: 20 }],
      };
    }),
  }));
  const reports = batches.length * BATCH;

  let accepted = 0;
  const apiSeconds = await pool(batches, CONCURRENCY, async (batch) => {
    const res = await fetch(`${app.url}/v1/telemetry`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(batch),
    });
    if (!res.ok) throw new Error(`telemetry: ${res.status} ${await res.text()}`);
    accepted += ((await res.json()) as { accepted: number }).accepted;
  });

  let duplicates = 0;
  const retrySeconds = await pool(batches, CONCURRENCY, async (batch) => {
    const res = await fetch(`${app.url}/v1/telemetry`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(batch),
    });
    duplicates += ((await res.json()) as { duplicates: number }).duplicates;
  });

  // Baseline: the same rows, the same batches, a bare INSERT into an unpartitioned copy of the raw table.
  await db.query(`DROP TABLE IF EXISTS bench_telemetry_bare`);
  await db.query(`CREATE TABLE bench_telemetry_bare (LIKE telemetry_reports INCLUDING DEFAULTS)`);
  await db.query(`ALTER TABLE bench_telemetry_bare ADD PRIMARY KEY (report_id)`);
  const bareSeconds = await pool(batches, CONCURRENCY, async (batch) => {
    const col = <T>(f: (r: (typeof batch.reports)[number]) => T): T[] => batch.reports.map(f);
    await db.query(
      `INSERT INTO bench_telemetry_bare (report_id, tenant_id, device_id, device_class, model_id, version_id, artifact_id, ran, outcome, failure_stage, error_code, latency, runtime_version)
       SELECT r.report_id, $1, $2, 'dc-bench', $3, $4, $5, r.ran, r.outcome, r.failure_stage, r.error_code, r.latency, 'bench'
       FROM unnest($6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[])
         AS r(report_id, ran, outcome, failure_stage, error_code, latency)
       ON CONFLICT (report_id) DO NOTHING`,
      [
        tenant.id,
        batch.deviceId,
        modelId,
        versionId,
        artifactId,
        col((r) => r.reportId),
        col((r) => r.ran),
        col((r) => r.outcome),
        col((r) => ('failureStage' in r ? r.failureStage : null)),
        col((r) => ('errorCode' in r ? r.errorCode : null)),
        col((r) => JSON.stringify(r.latency)),
      ],
    );
  });
  await db.query(`DROP TABLE bench_telemetry_bare`);

  const [evidence] = await db.query<{ reports: string; failures: string; speedup_samples: string }[]>(
    `SELECT SUM(reports) AS reports, SUM(failures) AS failures, SUM(speedup_samples) AS speedup_samples
     FROM fleet_evidence WHERE tenant_id = $1`,
    [tenant.id],
  );
  const rate = (s: number): string => `${Math.round(reports / s).toLocaleString('en')} reports/s`;
  console.log(
    `machine: ${cpus()[0]?.model} x${cpus().length}, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; ` + `${reports} reports in ${batches.length} batches of ${BATCH}, ${CONCURRENCY} at a time`,
  );
  console.log(`POST /v1/telemetry:     ${apiSeconds.toFixed(2)} s, ${rate(apiSeconds)} (accepted ${accepted})`);
  console.log(`same batches again:     ${retrySeconds.toFixed(2)} s, ${rate(retrySeconds)} (duplicates ${duplicates})`);
  console.log(`bare batched INSERT:    ${bareSeconds.toFixed(2)} s, ${rate(bareSeconds)}`);
  console.log(`ratio API / bare: ${(bareSeconds / apiSeconds).toFixed(2)}`);
  console.log(
    `rollups: ${evidence.reports} reports, ${evidence.failures} failures, ${evidence.speedup_samples} timed runs ` +
      `(${accepted === reports && duplicates === reports ? 'every report counted once' : 'MISMATCH'})`,
  );
} finally {
  if (db.isInitialized) await db.destroy();
  await app.close();
}
