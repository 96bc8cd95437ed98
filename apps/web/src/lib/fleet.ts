import type { FleetServing, Rollout, RolloutStatus } from '@kiln/sdk/types';
import { formatSpeedup } from './format.js';
import type { StatusInfo } from './status.js';

/** [2.91, 3.32] → "2.91–3.32×"; null → "". */
export function formatInterval(ci: [number, number] | null | undefined): string {
  if (!ci) return '';
  return `${formatSpeedup(ci[0]).replace('×', '')}–${formatSpeedup(ci[1])}`;
}

export function rolloutStatusInfo(status: RolloutStatus): StatusInfo {
  switch (status) {
    case 'running':
      return { label: 'Rolling out', tone: 'progress', active: true };
    case 'paused':
      return { label: 'Paused', tone: 'warning', active: true };
    case 'completed':
      return { label: 'Completed', tone: 'success', active: false };
    case 'rolled_back':
      return { label: 'Rolled back', tone: 'danger', active: false };
  }
}

export function isRolloutActive(r: Pick<Rollout, 'status'> | null | undefined): boolean {
  return r?.status === 'running' || r?.status === 'paused';
}

/** "v2 · linux-x86_64-v2" or "v2 · portable graph". */
export function describeServing(s: Pick<FleetServing, 'versionNumber' | 'targetId'>): string {
  return `v${s.versionNumber} · ${s.targetId ?? 'portable graph'}`;
}

/** What the rollout's stages look like: each with its percent and whether it is done, current or to come. */
export function stageStates(r: Pick<Rollout, 'stages' | 'stageIndex' | 'status'>): {
  percent: number;
  state: 'done' | 'current' | 'next';
}[] {
  return r.stages.map((percent, i) => ({
    percent,
    state: r.status === 'completed' || i < r.stageIndex ? 'done' : i === r.stageIndex ? 'current' : ('next' as const),
  }));
}
