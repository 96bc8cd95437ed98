import type { BuildStatus, CompilationStatus } from '@kiln/contracts';

export type Tone = 'neutral' | 'info' | 'progress' | 'success' | 'warning' | 'danger';

export interface StatusInfo {
  label: string;
  tone: Tone;
  /** Still moving: the badge pulses and the page keeps listening. */
  active: boolean;
}

export const TERMINAL_COMPILATION_STATUSES: readonly CompilationStatus[] = [
  'succeeded',
  'partial',
  'failed',
  'cancelled',
];
export const TERMINAL_BUILD_STATUSES: readonly BuildStatus[] = ['succeeded', 'cached', 'failed', 'cancelled'];

export function isTerminalCompilation(status: CompilationStatus): boolean {
  return TERMINAL_COMPILATION_STATUSES.includes(status);
}

export function buildStatusInfo(status: BuildStatus): StatusInfo {
  switch (status) {
    case 'queued':
      return { label: 'Queued', tone: 'neutral', active: true };
    case 'waiting_for_worker':
      return { label: 'Waiting for a worker', tone: 'warning', active: true };
    case 'running':
      return { label: 'Building', tone: 'progress', active: true };
    case 'succeeded':
      return { label: 'Done', tone: 'success', active: false };
    case 'cached':
      return { label: 'Done (cached)', tone: 'success', active: false };
    case 'failed':
      return { label: 'Failed', tone: 'danger', active: false };
    case 'cancelled':
      return { label: 'Cancelled', tone: 'neutral', active: false };
  }
}

export function compilationStatusInfo(status: CompilationStatus): StatusInfo {
  switch (status) {
    case 'pending':
      return { label: 'Starting', tone: 'neutral', active: true };
    case 'running':
      return { label: 'Running', tone: 'progress', active: true };
    case 'succeeded':
      return { label: 'Succeeded', tone: 'success', active: false };
    case 'partial':
      return { label: 'Partly failed', tone: 'warning', active: false };
    case 'failed':
      return { label: 'Failed', tone: 'danger', active: false };
    case 'cancelled':
      return { label: 'Cancelled', tone: 'neutral', active: false };
  }
}

/** The steps a build goes through, in order, as the worker and the compile driver report them. */
export const BUILD_PHASES = [
  { id: 'downloading', label: 'Download' },
  { id: 'loading', label: 'Load' },
  { id: 'compiling', label: 'Compile' },
  { id: 'isa_check', label: 'ISA check' },
  { id: 'packaging', label: 'Package' },
  { id: 'verifying', label: 'Verify' },
  { id: 'timing', label: 'Time' },
  { id: 'uploading', label: 'Store' },
] as const;

/** Index of a phase in BUILD_PHASES (all done for 'done'); -1 before the first, null when unknown. */
export function phaseIndex(phase: string | null): number | null {
  if (phase === null) return -1;
  if (phase === 'done') return BUILD_PHASES.length;
  const i = BUILD_PHASES.findIndex((p) => p.id === phase);
  return i === -1 ? null : i;
}

/** "Compiling", "ISA check", or the raw phase name for one this dashboard does not know yet. */
export function phaseLabel(phase: string | null): string {
  if (phase === null) return 'Not started';
  if (phase === 'done') return 'Done';
  const known: Record<string, string> = {
    downloading: 'Downloading the model',
    loading: 'Loading the program',
    compiling: 'Compiling with AOTInductor',
    isa_check: 'Checking instructions',
    packaging: 'Packaging parts',
    verifying: 'Verifying numerics',
    timing: 'Timing eager vs compiled',
    uploading: 'Storing the artifact',
  };
  return known[phase] ?? phase.replace(/_/g, ' ');
}

/** Targets of a finished compilation worth retrying: those that failed or were cancelled. */
export function retryableTargets(builds: readonly { targetId: string; status: BuildStatus }[]): string[] {
  return builds.filter((b) => b.status === 'failed' || b.status === 'cancelled').map((b) => b.targetId);
}
