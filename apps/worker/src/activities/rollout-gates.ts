import type { GateBreach, RolloutGateSettings } from '@kiln/temporal';

/** One arm (new or previous version) of one device class in one stage, as rollout_stats sums it up. */
export interface ArmStats {
  reports: number;
  failures: number;
  failureCodes: Record<string, number>;
  latencySamples: number;
  logMsSum: number;
  logMsSqSum: number;
}

export interface ClassStageStats {
  deviceClass: string;
  label: string;
  new: ArmStats | null;
  previous: ArmStats | null;
}

/** Two-sided 95 %. */
const Z = 1.96;

function meanAndVariance(a: ArmStats): { mean: number; variance: number } {
  const n = a.latencySamples;
  const mean = a.logMsSum / n;
  const variance = n > 1 ? Math.max(0, (a.logMsSqSum - (a.logMsSum * a.logMsSum) / n) / (n - 1)) : 0;
  return { mean, variance };
}

function pct(x: number): string {
  return `${Number((x * 100).toFixed(1))} %`;
}

function codes(c: Record<string, number>): string {
  const list = Object.entries(c)
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1))
    .map(([code, n]) => `${code} ×${n}`);
  return list.length > 0 ? ` (${list.join(', ')})` : '';
}

/**
 * The gates of one device class in one stage (docs/fleet.md):
 *  - error rate: with at least `minReports` reports of the new version, failures / reports above `maxErrorRate`;
 *  - latency: with at least `minReports` timed runs on each arm, the new version confidently slower than the
 *    previous one by more than `maxLatencyRatio` (the low end of the 95 % interval of the ratio of geometric means,
 *    Welch's standard error on log-latency, above it). Same class, same stage, same time: a like-for-like comparison.
 * Returns the first gate broken, or null.
 */
export function judgeClass(c: ClassStageStats, gates: RolloutGateSettings): GateBreach | null {
  const n = c.new;
  if (!n) return null;
  if (n.reports >= gates.minReports && n.failures / n.reports > gates.maxErrorRate) {
    const rate = n.failures / n.reports;
    return {
      deviceClass: c.deviceClass,
      label: c.label,
      gate: 'error-rate',
      message:
        `error-rate gate: ${n.failures} of ${n.reports} runs of the new version failed on this class` +
        `${codes(n.failureCodes)}, ${pct(rate)} > ${pct(gates.maxErrorRate)}`,
      detail: { failures: n.failures, reports: n.reports, errorRate: rate, maxErrorRate: gates.maxErrorRate },
    };
  }
  const p = c.previous;
  if (p && n.latencySamples >= gates.minReports && p.latencySamples >= gates.minReports) {
    const a = meanAndVariance(n);
    const b = meanAndVariance(p);
    const logRatio = a.mean - b.mean;
    const se = Math.sqrt(a.variance / n.latencySamples + b.variance / p.latencySamples);
    const low = Math.exp(logRatio - Z * se);
    if (low > gates.maxLatencyRatio) {
      const ratio = Math.exp(logRatio);
      return {
        deviceClass: c.deviceClass,
        label: c.label,
        gate: 'latency',
        message:
          `latency gate: the new version runs ${ratio.toFixed(2)}x as long as the previous one on this class ` +
          `(95 % CI from ${low.toFixed(2)}x, ${n.latencySamples} vs ${p.latencySamples} runs) > ${gates.maxLatencyRatio}x`,
        detail: {
          ratio,
          low,
          maxLatencyRatio: gates.maxLatencyRatio,
          newRuns: n.latencySamples,
          previousRuns: p.latencySamples,
        },
      };
    }
  }
  return null;
}
