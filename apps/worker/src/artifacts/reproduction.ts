import { type ArtifactPart, type ArtifactReproduction, ErrorCode, KilnError } from '@kiln/contracts';

/** One part whose two builds differ: its sha256 in each (null when that build lacks the part). */
export interface PartDifference {
  role: ArtifactPart['role'];
  /** The weights part's entry in the package (absent for the code part). */
  entry?: string;
  first: string | null;
  second: string | null;
}

/** What a reproduced build's manifest says: two builds, every part identical. */
export const REPRODUCED: ArtifactReproduction = { checked: true, builds: 2, identical: true };
/** What a build's manifest says when its compilation did not ask for a second build. */
export const NOT_CHECKED: ArtifactReproduction = { checked: false };

const keyOf = (p: ArtifactPart): string => `${p.role}\u0000${p.entry ?? ''}`;

/**
 * The parts that differ between two builds of the same job, matched by role and weights entry: another sha256 or
 * size, or a part only one build has. Empty when the builds gave the same bytes.
 */
export function compareBuilds(first: readonly ArtifactPart[], second: readonly ArtifactPart[]): PartDifference[] {
  const again = new Map(second.map((p) => [keyOf(p), p]));
  const differences: PartDifference[] = [];
  for (const p of first) {
    const q = again.get(keyOf(p));
    again.delete(keyOf(p));
    if (q && q.sha256 === p.sha256 && q.size === p.size) continue;
    differences.push({
      role: p.role,
      ...(p.entry ? { entry: p.entry } : {}),
      first: p.sha256,
      second: q?.sha256 ?? null,
    });
  }
  for (const q of again.values()) {
    differences.push({ role: q.role, ...(q.entry ? { entry: q.entry } : {}), first: null, second: q.sha256 });
  }
  return differences;
}

/**
 * Compares two builds of the same job: returns the build-log line that says what was reproduced, or throws
 * BUILD_NOT_REPRODUCIBLE with both hashes of every differing part in `details.parts`.
 */
export function checkReproduced(first: readonly ArtifactPart[], second: readonly ArtifactPart[]): string {
  const differences = compareBuilds(first, second);
  if (differences.length > 0) {
    const said = differences.map((d) => `${d.role} part ${named(d.first)} then ${named(d.second)}`).join(', ');
    throw new KilnError(
      ErrorCode.BUILD_NOT_REPRODUCIBLE,
      `A second build of the same job, in a fresh job folder, gave other bytes: ${said}.`,
      { parts: differences },
    );
  }
  return `reproduced: ${first.map((p) => `${p.role} part identical (sha256 ${p.sha256})`).join(', ')}`;
}

function named(sha256: string | null): string {
  return sha256 ? `sha256 ${sha256}` : 'missing';
}
