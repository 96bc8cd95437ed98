// What one model compiled for every x86 target this worker serves costs in S3, against the naive sum and against
// issue 17's goal (item 1: stored bytes <= 1.1 x weights + N x code).
//
//   node --import @swc-node/register/esm-register bench/stored-bytes.ts [model.pt2]
//
// Uploads the model for a fresh tenant, compiles it for the served x86 targets through the real stack (API, Temporal,
// build worker, SeaweedFS), then sizes every object under the tenant's prefix and sorts them: the version's portable
// archive and its signed manifest, the artifacts' parts (code, weights, from their manifests), the manifests, the
// inductor caches, anything else. "Naive" is what a compile service that stores each target's whole package next to
// the upload would hold: the portable archive + N x (code + weights). Byte counts, not timings: exact on any machine.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ArtifactManifest } from '@kiln/contracts';
import {
  api,
  createTenant,
  FIXTURES_DIR,
  onlineTargets,
  startApi,
  storage,
  storedManifest,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
  X86_TARGETS,
} from '../test/support/kiln-harness.js';

const modelPath = process.argv[2] ?? path.join(FIXTURES_DIR, 'mlp.pt2');

async function main(): Promise<void> {
  const app = await startApi();
  const worker = new WorkerProcess();
  const s3 = storage();
  await worker.start();
  try {
    const tenant = await createTenant(app, 'bench-stored-bytes');
    const online = await onlineTargets(app, tenant);
    const targets = X86_TARGETS.filter((t) => online.includes(t));
    if (targets.length === 0) throw new Error(`the local worker serves no x86 target:\n${worker.output}`);
    const { versionId } = await uploadModel(app, tenant, 'bench-model', await readFile(modelPath));
    const created = await api(app)
      .post(`/v1/versions/${versionId}/compilations`)
      .set(tenant.auth)
      .send({ targets })
      .expect(201);
    const done = await waitForCompilation(app, tenant, (created.body as { id: string }).id);
    if (done.status !== 'succeeded') throw new Error(`compilation ${done.status}: ${JSON.stringify(done.builds)}`);
    const artifacts = (await api(app).get(`/v1/versions/${versionId}/artifacts`).set(tenant.auth).expect(200)).body as {
      targetId: string;
      cacheKey: string;
    }[];

    const roles = new Map<string, 'code' | 'weights'>();
    let naiveArtifacts = 0;
    let weights = 0;
    for (const a of artifacts) {
      const m = await storedManifest<ArtifactManifest>(s3, tenant.id, a.cacheKey);
      for (const p of m.parts) {
        roles.set(p.sha256, p.role);
        naiveArtifacts += p.size;
        if (p.role === 'weights') weights = Math.max(weights, p.size);
      }
    }
    const sizes: Record<string, number> = {};
    const add = (kind: string, n: number) => (sizes[kind] = (sizes[kind] ?? 0) + n);
    for (const key of await s3.listKeys(`tenants/${tenant.id}/`)) {
      const n = (await s3.size(key)) ?? 0;
      const blob = /\/blobs\/sha256\/([0-9a-f]{64})$/.exec(key);
      if (blob) add(roles.get(blob[1]) ? `${roles.get(blob[1])} parts` : 'other blobs', n);
      else if (key.endsWith('.portable.pt2')) add('portable archive', n);
      else if (key.endsWith('.portable-manifest.json')) add('portable manifest', n);
      else if (key.includes('/inductor-caches/')) add('inductor caches', n);
      else if (key.includes('/manifests/')) add('artifact manifests', n);
      else add(`other (${key.split('/').slice(2, 3).join('')})`, n);
    }
    const portable = sizes['portable archive'] ?? 0;
    const code = sizes['code parts'] ?? 0;
    const stored = portable + code + (sizes['weights parts'] ?? 0);
    const naive = portable + naiveArtifacts;
    const goal = 1.1 * weights + code;
    const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
    console.log(`model ${modelPath}, ${targets.length} targets (${targets.join(', ')}); weights part ${kb(weights)}`);
    for (const [kind, n] of Object.entries(sizes).sort()) console.log(`  ${kind.padEnd(22)} ${kb(n)}`);
    console.log(`stored (portable archive + parts):    ${kb(stored)}`);
    console.log(
      `naive (archive + N whole packages):   ${kb(naive)}  -> stored / naive = ${(stored / naive).toFixed(2)}`,
    );
    console.log(
      `issue 17 goal (1.1 x weights + N x code): ${kb(goal)}  -> stored / goal = ${(stored / goal).toFixed(2)}; ` +
        `weights stored ${((stored - code) / weights).toFixed(2)} x`,
    );
  } finally {
    s3.client.destroy();
    await worker.stop();
    await app.close();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
