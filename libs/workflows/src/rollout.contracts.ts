// Types shared by the rollout workflow, the worker's rollout activities and the API that starts and steers it.
// Pure types and constants only: this file is bundled into Temporal's deterministic workflow sandbox.

export const ROLLOUT_WORKFLOW = 'rolloutWorkflow';
/** Workflow ids are business ids: one workflow per rollout, so starting it twice is harmless. */
export const rolloutWorkflowId = (rolloutId: string): string => `rollout-${rolloutId}`;

/** Updates (they answer once the workflow has recorded the change) and the state query. */
export const ROLLOUT_PAUSE_UPDATE = 'pause';
export const ROLLOUT_RESUME_UPDATE = 'resume';
export const ROLLOUT_ROLLBACK_UPDATE = 'rollback';
export const ROLLOUT_STATE_QUERY = 'state';

/** Gate settings of one rollout (KilnConfig gives the defaults; docs/fleet.md). */
export interface RolloutGateSettings {
  holdSeconds: number;
  checkIntervalSeconds: number;
  maxErrorRate: number;
  minReports: number;
  maxLatencyRatio: number;
  minReportsToPromote: number;
}

export interface RolloutInput {
  rolloutId: string;
  tenantId: string;
  /** Percentages, increasing, the last one 100. */
  stages: number[];
  gates: RolloutGateSettings;
  /** Where the activities run; defaults to the orchestrator queue (tests isolate themselves). */
  orchestratorTaskQueue?: string;
}

/** Who asked for a pause, resume or rollback: an API key id, and optionally why. */
export interface RolloutControl {
  actor: string;
  reason?: string;
}

export type RolloutPhase = 'running' | 'paused' | 'completed' | 'rolled_back';

export interface RolloutState {
  status: RolloutPhase;
  stageIndex: number;
  percent: number;
  /** When the current stage's hold started (workflow time, ms); it restarts after a resume. */
  holdStartedAt: number;
}

export type GateName = 'error-rate' | 'latency';

/** One device class breaking one gate, with the figures. */
export interface GateBreach {
  deviceClass: string;
  label: string;
  gate: GateName;
  message: string;
  detail: Record<string, number | string>;
}

export interface GateVerdict {
  breaches: GateBreach[];
  /** Reports on the new version in this stage, from classes still in the rollout. */
  newReports: number;
  /** Classes that reported on the new version during the rollout and are still in it. */
  activeClasses: number;
  /** Classes rolled back so far (including the breaches of this verdict). */
  rolledBackClasses: number;
}

/** Bookkeeping of a rollout, on the orchestrator queue. All idempotent (a retried activity changes nothing twice). */
export interface RolloutActivities {
  /** Makes `stageIndex` the current stage (recording `promoted` when it follows an earlier one). */
  enterStage(input: { rolloutId: string; stageIndex: number }): Promise<void>;
  /** Reads the stage's rollups and judges every class still in the rollout. */
  evaluateGates(input: { rolloutId: string; stageIndex: number; gates: RolloutGateSettings }): Promise<GateVerdict>;
  /** Rolls these classes back (they get the previous version from now on), recording each breach. */
  rollBackClasses(input: { rolloutId: string; stageIndex: number; breaches: GateBreach[] }): Promise<void>;
  setPaused(input: { rolloutId: string; paused: boolean; control: RolloutControl }): Promise<void>;
  /** Completes (moves the channel to the new version) or rolls the whole rollout back. */
  finishRollout(input: {
    rolloutId: string;
    outcome: 'completed' | 'rolled_back';
    control: RolloutControl;
    halted?: boolean;
  }): Promise<void>;
}
