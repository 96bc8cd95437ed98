// Formatting for people. Pure functions (unit-tested in format.spec.ts); no DOM, no locale surprises:
// numbers use "en-US" grouping so that screenshots and tests read the same everywhere.

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB"; exact bytes below 1 KiB. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '—';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${bytes} B`;
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${trimZeros(value.toFixed(digits))} ${BYTE_UNITS[unit]}`;
}

/** 1234567 → "1.23M"; small counts exactly with grouping ("12,345"). */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const abs = Math.abs(n);
  if (abs < 100_000) return Math.round(n).toLocaleString('en-US');
  for (const [size, suffix] of [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'k'],
  ] as const) {
    if (abs >= size) return `${trimZeros((n / size).toFixed(n / size >= 100 ? 0 : n / size >= 10 ? 1 : 2))}${suffix}`;
  }
  return String(n);
}

/** Milliseconds of one model call: "0.042 ms", "1.25 ms", "312 ms", "2.4 s". */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms >= 1000) return `${trimZeros((ms / 1000).toFixed(ms >= 10_000 ? 0 : 1))} s`;
  if (ms >= 100) return `${Math.round(ms)} ms`;
  if (ms >= 1) return `${trimZeros(ms.toFixed(2))} ms`;
  return `${trimZeros(ms.toPrecision(2))} ms`;
}

/** A wall-clock duration: "42 s", "3 min 05 s", "1 h 02 min". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** 1.6234 → "1.62×". */
export function formatSpeedup(x: number): string {
  if (!Number.isFinite(x) || x <= 0) return '—';
  return `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}×`;
}

/** A numeric error: 0 → "0", 3.1e-6 → "3.1e-6", 0.012 → "0.012". */
export function formatError(x: number): string {
  if (!Number.isFinite(x)) return '—';
  if (x === 0) return '0';
  if (Math.abs(x) >= 0.001 && Math.abs(x) < 1000) return trimZeros(x.toPrecision(2));
  const [mantissa, exponent] = x.toExponential(1).split('e') as [string, string];
  return `${trimZeros(mantissa)}e${Number(exponent)}`;
}

/** The first characters of a hash, for display next to a copy button. */
export function shortHash(hash: string, length = 12): string {
  return hash.length <= length ? hash : hash.slice(0, length);
}

/** "just now", "4 min ago", "3 h ago", "2 days ago", then the date. */
export function relativeTime(iso: string, now: number = Date.now()): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '—';
  const s = Math.round((now - t) / 1000);
  if (s < 45) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  const d = Math.round(h / 24);
  if (d < 30) return d === 1 ? 'yesterday' : `${d} days ago`;
  return formatDate(iso);
}

/** "2026-11-26 11:58" in UTC: unambiguous for a team spread over time zones. */
export function formatDate(iso: string): string {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return '—';
  return `${t.toISOString().slice(0, 10)} ${t.toISOString().slice(11, 16)} UTC`;
}

/** A transfer rate from bytes over milliseconds: "12.5 MiB/s". */
export function formatRate(bytes: number, ms: number): string {
  if (ms <= 0 || bytes <= 0) return '—';
  return `${formatBytes((bytes * 1000) / ms)}/s`;
}

/** "1 target", "3 targets". */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? word : many}`;
}

function trimZeros(s: string): string {
  return s.includes('.') && !s.includes('e') ? s.replace(/\.?0+$/, '') : s;
}
