import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findTarget, recipeHash } from '@kiln/targets';
import {
  applyChanges,
  compileSchema,
  loadContractVectors,
  type SchemaVectors,
} from '../../../../test/support/contract-vectors.js';
import { BUILD_TIMING } from '../activities/compile-job-settings.js';
import type { DriverJob } from './driver-runner.js';

/**
 * The driver job's JSON Schema (libs/contracts/src/schemas/driver-job.schema.json) on the vectors of
 * test/fixtures/contracts/driver-jobs.json, whose verdicts the driver's parse_job gives in pytest
 * (python/driver/tests/test_contract_vectors.py). Their bases are jobs as this worker writes them, from the target
 * catalog; driver-runner.spec.ts checks the job.json of a real run against the schema too.
 */
type JobVectors = SchemaVectors<DriverJob & { tenantId: string }, { valid: boolean }>;

const file = loadContractVectors<JobVectors>('driver-jobs.json');
const schemaAccepts = compileSchema('driver-job');

describe('shared vectors: driver jobs (test/fixtures/contracts/driver-jobs.json) and their schema', () => {
  it('the bases are jobs as the worker writes them, for targets of the catalog', () => {
    for (const [name, job] of Object.entries(file.bases)) {
      const target = findTarget(job.targetId);
      assert.ok(target, `${name}: no target ${job.targetId}`);
      assert.deepEqual(job.recipe, target.recipe, name);
      assert.equal(job.recipeHash, recipeHash(target.recipe), name);
      assert.deepEqual(job.requires, target.requires, name);
      assert.deepEqual(job.timing, BUILD_TIMING, name);
    }
  });

  for (const v of file.vectors) {
    it(`${v.schema ? 'accepts' : 'refuses'} ${v.name}`, () => {
      assert.equal(schemaAccepts(applyChanges(file.bases[v.base], v.changes)), v.schema);
      // What the schema accepts the driver accepts, but for the rules only its code states.
      if (v.schema && !v.valid) assert.ok(v.beyondSchema, 'the schema accepts what the driver refuses');
    });
  }
});
