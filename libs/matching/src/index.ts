export {
  describeDeviceX86Level,
  describeX86Level,
  deviceX86Level,
  missingX86Flags,
  type DeviceX86Level,
} from './cpu-level.js';
export {
  AVX2_LAPTOP_FINGERPRINT,
  AVX512_SERVER_FINGERPRINT,
  DEBIAN_GRAVITON_FINGERPRINT,
  EXAMPLE_FINGERPRINTS,
  GRAVITON_FINGERPRINT,
  H100_BOX_FINGERPRINT,
  SSE42_BOX_FINGERPRINT,
} from './example-fingerprints.js';
export {
  FINGERPRINT_LIMITS,
  FINGERPRINT_SCHEMA_VERSION,
  validateFingerprint,
  type DeviceFingerprint,
  type FingerprintArch,
  type FingerprintGpu,
  type FingerprintLibc,
  type FingerprintOs,
  type FingerprintValidation,
  type X86Level,
} from './fingerprint.js';
export { deviceClassOf, fnv1a64, type DeviceClass } from './device-class.js';
export {
  ARTIFACT_PRECISIONS,
  DEFAULT_ACCEPT_PRECISIONS,
  DEFAULT_EVIDENCE_POLICY,
  DEFAULT_SPEEDUP_TOLERANCE,
  DEFAULT_UNMEASURED_ARTIFACT_POLICY,
  UNMEASURED_ARTIFACT_POLICIES,
  asFastAs,
  checkCandidate,
  readEvidence,
  resolveArtifact,
  type ArtifactEvidence,
  type Candidate,
  type CandidateCheck,
  type EvidencePolicy,
  type RankedArtifact,
  type Resolution,
  type ResolveOptions,
  type SpeedupBasis,
  type UnmeasuredArtifactPolicy,
} from './match-artifacts.js';
export { inRolloutStage, ROLLOUT_BUCKETS, rolloutBucket } from './rollout-bucket.js';
export {
  compareDottedVersions,
  cudaMajorMinor,
  normalizeComputeCapability,
  normalizeDottedVersion,
  parseDottedVersion,
  parseTorchVersion,
  type TorchVersion,
} from './versions.js';
