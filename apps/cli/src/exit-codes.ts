import { KilnAbortError, KilnApiError, KilnNetworkError, KilnStorageError } from '@kiln/sdk';

/** What `kiln` exits with; CI scripts may rely on these (docs/sdk.md). */
export const ExitCode = {
  OK: 0,
  /** The compilation ended failed, partial or cancelled (or a build of the asked target failed). */
  COMPILATION_FAILED: 1,
  /** Bad usage or input the API refused (bad arguments, unknown target, a .pt2 that fails validation). */
  USAGE: 2,
  /** Missing, invalid or revoked credentials, or a key that may not do this. */
  AUTH: 3,
  /** No such model, version, compilation, artifact or upload (for this tenant). */
  NOT_FOUND: 4,
  /** The server or the network failed (5xx, unreachable, timeouts after retries): try again later. */
  SERVER: 5,
  /** Interrupted (Ctrl-C): what was running on the server was cancelled. */
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Raised by the CLI itself for bad usage (missing credentials, unreadable files, ...). */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = ExitCode.USAGE,
  ) {
    super(message);
  }
}

export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof UsageError) return err.exitCode;
  if (err instanceof KilnAbortError) return ExitCode.INTERRUPTED;
  if (err instanceof KilnNetworkError) return ExitCode.SERVER;
  if (err instanceof KilnStorageError) return err.status >= 500 ? ExitCode.SERVER : ExitCode.USAGE;
  if (err instanceof KilnApiError) {
    if (err.status === 401 || err.status === 403) return ExitCode.AUTH;
    if (err.status === 404) return ExitCode.NOT_FOUND;
    if (err.status >= 500 || err.status === 429) return ExitCode.SERVER;
    return ExitCode.USAGE;
  }
  if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') return ExitCode.NOT_FOUND;
  return ExitCode.SERVER;
}
