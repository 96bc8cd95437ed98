/**
 * Where everything lives in the bucket. Every key starts with the tenant id, so one tenant's objects can
 * never be addressed through another tenant's records, and a tenant can be exported or erased by prefix.
 */
export const objectKeys = {
  /**
   * An uploaded .pt2 as the client sent it, keyed by the version id chosen before the upload started. Kept only
   * until it is validated and rewritten as the version's portable archive (below), then deleted.
   */
  modelVersion: (tenantId: string, versionId: string): string => `tenants/${tenantId}/versions/${versionId}.pt2`,
  /** The version's stored archive: the upload without its sample-input pickles (what workers and devices get). */
  portableModel: (tenantId: string, versionId: string): string =>
    `tenants/${tenantId}/versions/${versionId}.portable.pt2`,
  /** The signed manifest of a version's portable graph (binds the .pt2's sha256 to tenant, model and version). */
  portableManifest: (tenantId: string, versionId: string): string =>
    `tenants/${tenantId}/versions/${versionId}.portable-manifest.json`,
  /** A content-addressed artifact part (code package or weights blob): stored once per tenant. */
  blob: (tenantId: string, sha256: string): string => `tenants/${tenantId}/blobs/sha256/${sha256}`,
  /**
   * An artifact manifest, under its cache key and its own sha256: written once, never replaced. Two builds of one
   * cache key (retries, concurrent compilations) write two objects; the artifact row names the one it signed.
   */
  manifest: (tenantId: string, cacheKey: string, manifestSha256: string): string =>
    `tenants/${tenantId}/manifests/${cacheKey}/${manifestSha256}.json`,
  /** Every manifest ever written for a cache key (see `manifest`). */
  manifestsOf: (tenantId: string, cacheKey: string): string => `tenants/${tenantId}/manifests/${cacheKey}/`,
  /**
   * Where a build host may write: one object per part of its build, PUT through a presigned URL, re-hashed and
   * copied to `blob` by the orchestrator, then deleted.
   */
  stagedPart: (tenantId: string, buildId: string, sha256: string): string =>
    `tenants/${tenantId}/staging/${buildId}/${sha256}`,
  staging: (tenantId: string, buildId: string): string => `tenants/${tenantId}/staging/${buildId}/`,
  /** Where a build host PUTs the inductor cache its build packed (copied to `inductorCache` when published). */
  stagedInductorCache: (tenantId: string, buildId: string): string =>
    `tenants/${tenantId}/staging/${buildId}/inductor-cache.zip`,
  /**
   * An inductor cache of one scope (tenant, target, recipe hash: issue 17 item 3), under its own sha256: written once,
   * never replaced, so a build that was offered it reads the bytes it was offered while a newer one lands beside it.
   */
  inductorCache: (tenantId: string, targetId: string, recipeHash: string, sha256: string): string =>
    `tenants/${tenantId}/inductor-caches/${targetId}/${recipeHash}/${sha256}.zip`,
  /** The scope's latest cache: a small JSON `{ sha256, size }` naming one of the objects above (one PUT: latest wins). */
  inductorCacheLatest: (tenantId: string, targetId: string, recipeHash: string): string =>
    `tenants/${tenantId}/inductor-caches/${targetId}/${recipeHash}/latest.json`,
};
