import type { Build } from '@kiln/sdk';

/** The phases a build goes through (worker + compile driver), in order: what a target's bar shows. */
export const BUILD_PHASES = [
  'queued',
  'downloading',
  'loading',
  'compiling',
  'isa_check',
  'packaging',
  'verifying',
  'timing',
  'uploading',
  'done',
] as const;

/** Position of a build on its bar (0..BUILD_PHASES.length - 1); unknown phases keep the bar where it was. */
export function buildStep(build: Pick<Build, 'status' | 'phase'>, previous = 0): number {
  switch (build.status) {
    case 'queued':
    case 'waiting_for_worker':
      return 0;
    case 'succeeded':
    case 'cached':
    case 'failed':
    case 'cancelled':
      return BUILD_PHASES.length - 1;
    case 'running': {
      const i = BUILD_PHASES.indexOf((build.phase ?? '') as (typeof BUILD_PHASES)[number]);
      return i > 0 ? Math.min(i, BUILD_PHASES.length - 2) : Math.max(previous, 1);
    }
  }
}

/** A build's state in words: `running (compiling)`, `failed: COMPILE_FAILED`, `waiting for a worker`. */
export function describeBuild(build: Pick<Build, 'status' | 'phase' | 'errorCode'>): string {
  switch (build.status) {
    case 'waiting_for_worker':
      return 'waiting for a worker';
    case 'running':
      return build.phase ? `running (${build.phase})` : 'running';
    case 'failed':
      return build.errorCode ? `failed: ${build.errorCode}` : 'failed';
    case 'queued':
    case 'succeeded':
    case 'cached':
    case 'cancelled':
      return build.status;
  }
}
