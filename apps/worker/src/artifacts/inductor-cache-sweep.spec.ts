import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { objectKeys } from '@kiln/storage';
import { sweepInductorCaches } from './inductor-cache-sweep.js';

const scope = { tenantId: 't1', targetId: 'linux-x86_64-v3', recipeHash: 'r'.repeat(64) };
const sha = (c: string) => c.repeat(64);
const archive = (s: typeof scope, h: string) => objectKeys.inductorCache(s.tenantId, s.targetId, s.recipeHash, h);

/** An in-memory store: the sweep's two calls, over a set of keys. */
function store(keys: string[]) {
  const objects = new Set(keys);
  return {
    objects,
    listKeys: (prefix: string) => Promise.resolve([...objects].filter((k) => k.startsWith(prefix))),
    delete: (key: string) => Promise.resolve(void objects.delete(key)),
  };
}

describe('sweepInductorCaches', () => {
  test('deletes the scope archives it is not told to keep, and nothing else', async () => {
    const otherRecipe = { ...scope, recipeHash: 's'.repeat(64) };
    const otherTenant = { ...scope, tenantId: 't2' };
    const s = store([
      archive(scope, sha('a')),
      archive(scope, sha('b')),
      archive(scope, sha('c')),
      archive(scope, sha('d')),
      objectKeys.inductorCacheLatest(scope.tenantId, scope.targetId, scope.recipeHash),
      archive(otherRecipe, sha('a')),
      archive(otherTenant, sha('a')),
    ]);
    const deleted = await sweepInductorCaches(s, scope, [sha('c'), sha('b'), null, sha('c')]);
    assert.deepEqual(deleted.sort(), [archive(scope, sha('a')), archive(scope, sha('d'))]);
    assert.deepEqual(
      [...s.objects].sort(),
      [
        archive(scope, sha('b')),
        archive(scope, sha('c')),
        objectKeys.inductorCacheLatest(scope.tenantId, scope.targetId, scope.recipeHash),
        archive(otherRecipe, sha('a')),
        archive(otherTenant, sha('a')),
      ].sort(),
    );
  });

  test('a scope whose target id is a prefix of another target id leaves the other alone', async () => {
    const longer = { ...scope, targetId: 'linux-x86_64-v3-extra' };
    const s = store([archive(scope, sha('a')), archive(longer, sha('b'))]);
    assert.deepEqual(await sweepInductorCaches(s, scope, [sha('a')]), []);
    assert.equal(s.objects.size, 2);
  });
});
