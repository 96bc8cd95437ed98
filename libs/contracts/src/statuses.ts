export const BuildStatus = {
  QUEUED: 'queued',
  WAITING_FOR_WORKER: 'waiting_for_worker',
  RUNNING: 'running',
  SUCCEEDED: 'succeeded',
  CACHED: 'cached',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
} as const;
export type BuildStatus = (typeof BuildStatus)[keyof typeof BuildStatus];
export const TERMINAL_BUILD_STATUSES: readonly BuildStatus[] = ['succeeded', 'cached', 'failed', 'cancelled'];

export const CompilationStatus = {
  PENDING: 'pending',
  RUNNING: 'running',
  SUCCEEDED: 'succeeded',
  PARTIAL: 'partial',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
} as const;
export type CompilationStatus = (typeof CompilationStatus)[keyof typeof CompilationStatus];
