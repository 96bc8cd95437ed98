import { objectKeys } from '@kiln/storage';

/** What the sweep needs of the object store (ObjectStorage has both). */
export interface SweepStorage {
  listKeys(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
}

/**
 * Deletes the archives of one inductor-cache scope (tenant, target, recipe hash) that no build will be offered again:
 * every `<sha256>.zip` but those in `keep`. The caller keeps the new latest, the one it replaced (a build granted
 * that one moments ago may still be downloading it) and whatever the pointer names when it sweeps (a concurrent
 * publish may have moved it). A build whose archive went anyway fails its download and is retried with a fresh
 * grant: a cache is only an optimization. Returns the keys deleted.
 */
export async function sweepInductorCaches(
  storage: SweepStorage,
  scope: { tenantId: string; targetId: string; recipeHash: string },
  keep: Iterable<string | null | undefined>,
): Promise<string[]> {
  const kept = new Set<string>();
  for (const sha256 of keep) {
    if (sha256) kept.add(objectKeys.inductorCache(scope.tenantId, scope.targetId, scope.recipeHash, sha256));
  }
  const prefix = objectKeys.inductorCache(scope.tenantId, scope.targetId, scope.recipeHash, '').replace(/\.zip$/, '');
  const stale = (await storage.listKeys(prefix)).filter(
    (key) => /^[0-9a-f]{64}\.zip$/.test(key.slice(prefix.length)) && !kept.has(key),
  );
  for (const key of stale) await storage.delete(key);
  return stale;
}
