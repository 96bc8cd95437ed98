/**
 * UUIDv7 (RFC 9562): the first 48 bits are a Unix time in milliseconds. Device reports are identified by them, so
 * a report's id both deduplicates it and says which monthly partition of telemetry_reports it belongs in.
 */
const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/** The millisecond timestamp of a UUIDv7, or null for anything else. */
export function uuid7Millis(id: string): number | null {
  if (!UUID7.test(id)) return null;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/** The smallest UUID whose first 48 bits are `ms`: a partition bound (every UUIDv7 of that ms sorts at or after it). */
export function uuidLowerBound(ms: number): string {
  const hex = Math.floor(ms).toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-0000-0000-000000000000`;
}

/** 'YYYY-MM' (UTC) of a millisecond timestamp. */
export function monthOf(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** [start, end) of a 'YYYY-MM' month in ms (UTC). */
export function monthRange(month: string): [number, number] {
  const [y, m] = month.split('-').map(Number);
  return [Date.UTC(y, m - 1, 1), Date.UTC(y, m, 1)];
}
