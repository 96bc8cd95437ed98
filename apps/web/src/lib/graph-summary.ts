import type { DimSpec, Pt2Summary } from '@kiln/contracts';

export interface OpBar {
  /** The full operator name ("aten.linear.default"), or null for the "other" bar. */
  op: string | null;
  label: string;
  count: number;
}

/** "aten.linear.default" → "linear", "aten.add.Tensor" → "add.Tensor", "_operator.getitem" → "getitem". */
export function shortOpName(op: string): string {
  const parts = op.split('.');
  if (parts.length >= 3 && parts[parts.length - 1] === 'default') return parts.slice(1, -1).join('.');
  return parts.length >= 2 ? parts.slice(1).join('.') : op;
}

/** The `limit` most used operators (most used first, then by name), and one bar for the rest. */
export function opBars(histogram: Record<string, number>, limit = 12): OpBar[] {
  const sorted = Object.entries(histogram)
    .filter(([, n]) => n > 0)
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0));
  const top: OpBar[] = sorted.slice(0, limit).map(([op, count]) => ({ op, label: shortOpName(op), count }));
  const rest = sorted.slice(limit);
  if (rest.length > 0) {
    top.push({
      op: null,
      label: `${rest.length} other op${rest.length === 1 ? '' : 's'}`,
      count: rest.reduce((sum, [, n]) => sum + n, 0),
    });
  }
  return top;
}

/** How one dimension reads: "784", "s0 ∈ [1, 1024]", "2*s0 + 1", "s0 ≥ 2". */
export function formatDim(dim: DimSpec): string {
  if (dim.kind === 'static') return String(dim.size);
  const { min, max } = dim;
  if (min === null && max === null) return dim.expr;
  if (max === null) return `${dim.expr} ≥ ${min}`;
  if (min === null) return `${dim.expr} ≤ ${max}`;
  return `${dim.expr} ∈ [${min}, ${max}]`;
}

/** Total weight bytes the model carries (parameters + buffers + constants). */
export function weightBytes(summary: Pick<Pt2Summary, 'parameters' | 'buffers' | 'constants'>): number {
  return summary.parameters.bytes + summary.buffers.bytes + summary.constants.bytes;
}

/** A round upper bound for a chart axis: 7 → 8, 230 → 250, 0.9 → 1. */
export function niceCeil(x: number): number {
  if (!Number.isFinite(x) || x <= 0) return 1;
  const exp = Math.floor(Math.log10(x));
  const base = 10 ** exp;
  for (const step of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (x <= step * base + 1e-12) return Number((step * base).toPrecision(12));
  }
  return 10 * base;
}
