import type { ArtifactPrecision, ArtifactRequirements } from '@kiln/contracts';
import type { Candidate } from '../match-artifacts.js';

export interface CandidateSpec {
  artifactId: string;
  targetId?: string;
  requires?: Partial<ArtifactRequirements>;
  speedup?: number;
  verified?: boolean;
  isaPassed?: boolean;
  /** Left out of the manifest when absent (as in manifests written before the field existed). */
  precision?: ArtifactPrecision;
}

/** A CPU artifact as the x86 build host makes them, unless `requires` says otherwise. */
export function makeCandidate(spec: CandidateSpec): Candidate {
  const requires: ArtifactRequirements = {
    os: 'linux',
    arch: 'x86_64',
    x86Level: 3,
    computeCapability: null,
    torch: '2.13.0+cpu',
    glibc: '2.28',
    glibcxx: '3.4.26',
    ...spec.requires,
  };
  const speedup = spec.speedup ?? 1.5;
  return {
    artifactId: spec.artifactId,
    targetId:
      spec.targetId ??
      (requires.computeCapability !== null
        ? `linux-x86_64-cuda-sm${requires.computeCapability.replace('.', '')}`
        : `linux-x86_64-v${requires.x86Level ?? 1}`),
    manifest: {
      ...(spec.precision ? { precision: spec.precision } : {}),
      requires,
      verification: {
        passed: spec.verified ?? true,
        atol: 1e-4,
        rtol: 1e-3,
        maxAbsError: spec.verified === false ? 0.25 : 3.1e-6,
        maxRelError: 1e-5,
        inputShapes: [[[8, 64]]],
        freshProcess: true,
        device: requires.computeCapability !== null ? 'cuda' : 'cpu',
      },
      isaCheck: {
        passed: spec.isaPassed ?? true,
        forbidden: requires.x86Level === 3 ? ['zmm'] : [],
        counts: { xmm: 120, ymm: 800, zmm: spec.isaPassed === false ? 12 : 0 },
      },
      timing: { eagerMs: 10, compiledMs: 10 / speedup, speedup, runs: 50, threads: 8, inputShapes: [[8, 64]] },
    },
  };
}
