// The API's response shapes as the dashboard reads them (the DTOs of apps/api; GET /openapi.json).
import type { ArtifactManifest, BuildStatus, CompilationStatus, Pt2Summary } from '@kiln/contracts';
import type { RankedArtifact } from '@kiln/matching';

export interface Model {
  id: string;
  name: string;
  description: string;
  createdAt: string;
  latestVersion: number | null;
}

export interface ModelVersion {
  id: string;
  modelId: string;
  number: number;
  sizeBytes: number;
  fileSha256: string;
  contentHash: string;
  originalFilename: string;
  createdAt: string;
  summary: Pt2Summary;
}

export interface Build {
  targetId: string;
  status: BuildStatus;
  phase: string | null;
  attempt: number;
  errorCode: string | null;
  errorMessage: string | null;
  artifact: { id: string; sizeBytes: number; speedup: number; maxAbsError: number } | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Compilation {
  id: string;
  modelVersionId: string;
  status: CompilationStatus;
  targets: string[];
  builds: Build[];
  createdAt: string;
  finishedAt: string | null;
}

export interface BuildLog {
  targetId: string;
  log: string;
}

export interface EventsToken {
  token: string;
  expiresAt: string;
  url: string;
}

export interface Target {
  id: string;
  title: string;
  description: string;
  requires: {
    os: string;
    arch: string;
    x86Level: number | null;
    computeCapability: string | null;
    [key: string]: unknown;
  };
  recipeVersion: number;
  workerOnline: boolean;
}

export interface Artifact {
  id: string;
  targetId: string;
  cacheKey: string;
  modelContentHash: string;
  sizeBytes: number;
  createdAt: string;
  requires: ArtifactManifest['requires'];
  verification: ArtifactManifest['verification'];
  timing: ArtifactManifest['timing'];
  isaCheck: ArtifactManifest['isaCheck'];
  toolchain: ArtifactManifest['toolchain'];
  parts: ArtifactManifest['parts'];
}

export interface ArtifactDownload {
  artifactId: string;
  targetId: string;
  expiresAt: string;
  manifestUrl: string;
  parts: { role: string; sha256: string; size: number; entry?: string; url: string }[];
  assembly: string;
}

export interface Resolution {
  model: { id: string; name: string };
  version: { id: string; number: number; selectedBy: 'version' | 'channel' | 'latest'; channel: string | null };
  artifact: {
    id: string;
    targetId: string;
    sha256: string;
    size: number;
    signature: string;
    signingKeyId: string;
    manifestUrl: string;
    parts: { role: string; sha256: string; size: number; entry?: string; url: string }[];
    expiresAt: string;
    speedup: number;
    reasons: string[];
  } | null;
  fallback: { kind: 'portable'; url: string; sha256: string; size: number; expiresAt: string; reason: string };
  ranked: RankedArtifact[];
  rejected: { artifactId: string; targetId: string; reasons: string[] }[];
}

export interface Channel {
  name: string;
  modelId: string;
  versionId: string;
  versionNumber: number;
  updatedAt: string;
}

export interface ChannelMove {
  fromVersion: number | null;
  toVersion: number;
  movedByKeyId: string;
  movedAt: string;
}

export type UploadStatus = 'uploading' | 'completing' | 'completed' | 'failed' | 'aborted' | 'expired';

export interface Upload {
  uploadId: string;
  modelId: string;
  versionId: string;
  filename: string;
  sizeBytes: number;
  partSize: number;
  partCount: number;
  checksumAlgorithm: 'sha256' | 'md5';
  status: UploadStatus;
  expiresAt: string;
  createdAt: string;
  error: { code: string; message: string } | null;
}

export interface UploadState extends Upload {
  parts: { partNumber: number; size: number; etag: string; sha256?: string }[];
  uploadedBytes: number;
  version: ModelVersion | null;
}

export interface PresignedPart {
  partNumber: number;
  offset: number;
  size: number;
  url: string;
  headers: Record<string, string>;
  expiresAt: string;
}
