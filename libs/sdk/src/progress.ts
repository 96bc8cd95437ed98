import type { Build, Compilation } from './types.js';
import type { MultipartUploadEvent } from './upload-core/progress.js';

/** What compileRemote (and uploadModel) report through `onProgress`. */
export type ProgressEvent =
  | MultipartUploadEvent
  | { type: 'compilation'; compilationId: string; status: Compilation['status']; created: boolean }
  | {
      type: 'build';
      compilationId: string;
      targetId: string;
      status: Build['status'];
      phase: string | null;
      previousStatus: Build['status'] | null;
      build: Build;
    }
  | { type: 'retry'; what: string; attempt: number; delayMs: number; error: string };

/** Changes of per-target build state between two polls of a compilation (status or phase). */
export function buildChanges(previous: ReadonlyMap<string, Build>, compilation: Compilation): Build[] {
  return compilation.builds.filter((b) => {
    const before = previous.get(b.targetId);
    return !before || before.status !== b.status || before.phase !== b.phase;
  });
}

/** Whether a compilation (or build) status is final. */
export const TERMINAL_COMPILATION_STATUSES: readonly Compilation['status'][] = [
  'succeeded',
  'partial',
  'failed',
  'cancelled',
];
export const TERMINAL_BUILD_STATUSES: readonly Build['status'][] = ['succeeded', 'cached', 'failed', 'cancelled'];
