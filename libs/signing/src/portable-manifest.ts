/**
 * The manifest of a version's portable graph: the uploaded .pt2 that every device may fall back to. It binds the
 * file (sha256, size) to its tenant, model and version, with the model's content hash (which every compiled
 * artifact's signed manifest also carries as `modelContentHash`) and the guards the API's validator accepted.
 * Signed like an artifact manifest, under its own domain (libs/signing, PORTABLE_SIGNATURE_DOMAIN). The device
 * runtime checks it before it reads the file (python/runtime/kiln_runtime/portable_trust.py).
 */
export const PORTABLE_MANIFEST_VERSION = 1;

export interface PortableManifest {
  manifestVersion: typeof PORTABLE_MANIFEST_VERSION;
  kind: 'portable';
  format: 'pt2';
  tenantId: string;
  modelId: string;
  modelName: string;
  versionId: string;
  versionNumber: number;
  file: { sha256: string; size: number };
  /** The model's canonical content hash (libs/pt2 contentHash). */
  contentHash: string;
  /** guards_code entries as validated (libs/pt2 guard grammar); the device checks the file holds exactly these. */
  guards: string[];
  signedAt: string;
}

/** The exact bytes that are stored and signed (key order fixed by the object literal). */
export function portableManifestBytes(m: Omit<PortableManifest, 'manifestVersion' | 'kind' | 'format'>): Buffer {
  const manifest: PortableManifest = {
    manifestVersion: PORTABLE_MANIFEST_VERSION,
    kind: 'portable',
    format: 'pt2',
    tenantId: m.tenantId,
    modelId: m.modelId,
    modelName: m.modelName,
    versionId: m.versionId,
    versionNumber: m.versionNumber,
    file: { sha256: m.file.sha256, size: m.file.size },
    contentHash: m.contentHash,
    guards: [...m.guards],
    signedAt: m.signedAt,
  };
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
}
