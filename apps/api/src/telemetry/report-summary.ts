/** What one device report adds to the rollups (fleet_evidence, rollout_stats). Pure: unit-tested on its own. */

/**
 * Device-runtime codes that say nothing about the artifact: the device, its network or the API failed. The codes
 * with `artifactsFault: false` in libs/contracts/src/error-codes.json (report-summary.spec.ts keeps them equal).
 */
export const NOT_THE_ARTIFACTS_FAULT: ReadonlySet<string> = new Set([
  'API_UNREACHABLE',
  'API_ERROR',
  'BAD_RESPONSE',
  'DOWNLOAD_FAILED',
  'TORCH_MISSING',
  'CACHE_ERROR',
  'UNKNOWN_SIGNING_KEY',
  'USAGE',
  'BAD_FINGERPRINT',
]);

export interface ReportFacts {
  ran: 'artifact' | 'portable' | 'none';
  outcome: 'ok' | 'failed';
  failureStage?: string | null;
  errorCode?: string | null;
  latency: { artifactMs?: number | null; portableMs?: number | null }[];
}

export interface ReportSummary {
  /** The chosen artifact (or portable graph) failed to verify, load or run, or disagreed: evidence against it. */
  failure: boolean;
  /** The run failed for a reason that is not the artifact's (network, the device's trust store, ...). */
  otherError: boolean;
  /** Mean over the timed input sizes of ln(portable ms / artifact ms), when the artifact ran fine and both were timed. */
  logSpeedup: number | null;
  /** Mean over the timed input sizes of ln(ms) of what ran, when it ran fine. */
  logMs: number | null;
}

const positive = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;

function mean(values: number[]): number | null {
  return values.length > 0 ? values.reduce((a, b) => a + b, 0) / values.length : null;
}

export function summarizeReport(r: ReportFacts): ReportSummary {
  if (r.outcome === 'failed') {
    const notOurs = r.failureStage === 'download' || (r.errorCode != null && NOT_THE_ARTIFACTS_FAULT.has(r.errorCode));
    return { failure: !notOurs, otherError: notOurs, logSpeedup: null, logMs: null };
  }
  const speedups =
    r.ran === 'artifact'
      ? r.latency
          .filter((l) => positive(l.artifactMs) && positive(l.portableMs))
          .map((l) => Math.log(l.portableMs! / l.artifactMs!))
      : [];
  const times = r.latency
    .map((l) => (r.ran === 'artifact' ? l.artifactMs : r.ran === 'portable' ? l.portableMs : null))
    .filter(positive)
    .map((ms) => Math.log(ms));
  return { failure: false, otherError: false, logSpeedup: mean(speedups), logMs: mean(times) };
}

/** Adds failure counts: `{ LOAD_FAILED: 2 }` + `{ LOAD_FAILED: 1, RUN_FAILED: 1 }`. */
export function addCounts(into: Record<string, number>, code: string): void {
  into[code] = (into[code] ?? 0) + 1;
}
