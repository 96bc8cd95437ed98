import { ErrorCode, KilnError } from '@kiln/contracts';

/** The subset of error codes this library may throw: every rejection of an upload is one of these. */
export type Pt2ErrorCode = Extract<ErrorCode, `PT2_${string}`>;

/** Builds the KilnError for a rejected archive. Messages name the entry and the JSON path at fault. */
export function pt2Error(code: Pt2ErrorCode, message: string, details?: Record<string, unknown>): KilnError {
  return new KilnError(code, message, details);
}

/** Shortens attacker-controlled text before it is echoed in a message or log line. */
export function excerpt(text: string, max = 120): string {
  const printable = text.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return printable.length <= max ? printable : `${printable.slice(0, max)}…`;
}
