import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { ArtifactManifest } from '@kiln/contracts';
import { findTarget } from '@kiln/targets';
import {
  applyChanges,
  compileSchema,
  loadContractVectors,
  readRepoJson,
  repoPath,
  type SchemaVectors,
} from '../../../../test/support/contract-vectors.js';
import { checkManifest } from './manifest-check.js';

/**
 * The artifact manifest's JSON Schema (libs/contracts/src/schemas/artifact-manifest.schema.json) and the worker's
 * check of what the driver wrote, on the vectors of test/fixtures/contracts/manifests.json, whose device verdicts the
 * runtime's check_manifest gives in pytest (python/runtime/tests/test_contract_vectors.py).
 */
/** Its bases are the real manifests of test/fixtures/manifests, named by path, not documents of the file. */
type ManifestVectors = Omit<SchemaVectors<never, { worker: boolean; device: boolean }>, 'bases'>;

const MANIFESTS = 'test/fixtures/manifests';
const manifest = (base: string) => readRepoJson<ArtifactManifest>(`${MANIFESTS}/${base}.json`);
const schemaAccepts = compileSchema('artifact-manifest');

/** The job that built a manifest: its target's recipe and requirements, its hashes. */
function jobOf(m: ArtifactManifest): Parameters<typeof checkManifest>[1] {
  const target = findTarget(m.target);
  assert.ok(target, `no target ${m.target}`);
  return {
    targetId: target.id,
    recipe: target.recipe,
    recipeHash: m.recipeHash,
    modelContentHash: m.modelContentHash,
    cacheKey: m.cacheKey,
    requires: target.requires,
  };
}

function workerAccepts(doc: unknown, job: Parameters<typeof checkManifest>[1]): boolean {
  try {
    checkManifest(doc, job);
    return true;
  } catch {
    return false;
  }
}

describe('shared vectors: artifact manifests (test/fixtures/contracts/manifests.json) and their schema', () => {
  it('every real manifest of test/fixtures/manifests is valid', () => {
    for (const dir of readdirSync(repoPath(MANIFESTS))) {
      for (const file of readdirSync(repoPath(`${MANIFESTS}/${dir}`))) {
        const m = manifest(`${dir}/${file.replace(/\.json$/, '')}`);
        assert.ok(schemaAccepts(m), `${dir}/${file}: ${JSON.stringify(schemaAccepts.errors)}`);
        assert.ok(workerAccepts(m, jobOf(m)), `${dir}/${file}`);
      }
    }
  });

  for (const v of loadContractVectors<ManifestVectors>('manifests.json').vectors) {
    it(`${v.schema ? 'accepts' : 'refuses'} ${v.name}`, () => {
      const base = manifest(v.base);
      const doc = applyChanges(base, v.changes);
      assert.equal(schemaAccepts(doc), v.schema, JSON.stringify(schemaAccepts.errors));
      assert.equal(workerAccepts(doc, jobOf(base)), v.worker);
      // What the schema accepts the worker and the device accept, but for bindings the document cannot show.
      if (v.schema && !(v.worker && v.device)) assert.ok(v.beyondSchema, 'the schema accepts what a consumer refuses');
    });
  }
});

describe("the orchestrator's check of reproduction against what the compilation asked", () => {
  const base = manifest('cpu/linux-x86_64-v3');
  const withReproduction = (r: unknown): unknown => (r === undefined ? base : { ...base, reproduction: r });
  const cases: [string, unknown, boolean, boolean][] = [
    // [what, reproduction, reproduce asked, accepted]
    ['not asked, not checked', { checked: false }, false, true],
    ['asked, built twice and identical', { checked: true, builds: 2, identical: true }, true, true],
    ['not asked, no field (a build host from before it)', undefined, false, true],
    ['asked, no field (a build host from before it cannot have checked)', undefined, true, false],
    ['asked, not checked', { checked: false }, true, false],
    ['not asked, but claims a check', { checked: true, builds: 2, identical: true }, false, false],
    ['asked, and the rebuild differed', { checked: true, builds: 2, identical: false }, true, false],
  ];
  for (const [what, reproduction, reproduce, accepted] of cases) {
    it(`${accepted ? 'accepts' : 'refuses'}: ${what}`, () => {
      assert.equal(workerAccepts(withReproduction(reproduction), { ...jobOf(base), reproduce }), accepted);
    });
  }
});

describe("the orchestrator's check of the restored inductor cache against what the grant offered", () => {
  const base = manifest('cpu/linux-x86_64-v3');
  const [offered, other] = ['a1'.repeat(32), 'b2'.repeat(32)];
  const withCache = (restored: string | null): unknown => ({
    ...base,
    inductorCache: { restored: restored && { sha256: restored, bytes: 100 }, stored: null },
  });
  const cases: [string, unknown, string | null | undefined, boolean][] = [
    // [what, manifest, offered by the grant, accepted]
    ['restored the offered cache', withCache(offered), offered, true],
    ['offered one, restored none (ignored, or an older driver)', withCache(null), offered, true],
    ['no field at all (a driver from before it)', base, offered, true],
    ['restored another cache than the offered one', withCache(other), offered, false],
    ['claims a restored cache when none was offered (another tenant’s)', withCache(other), null, false],
    ['the build host’s own check (offer unknown): the shape only', withCache(other), undefined, true],
  ];
  for (const [what, doc, offeredInductorCache, accepted] of cases) {
    it(`${accepted ? 'accepts' : 'refuses'}: ${what}`, () => {
      assert.equal(workerAccepts(doc, { ...jobOf(base), offeredInductorCache }), accepted);
    });
  }
});
