import {
  ApplicationFailure,
  condition,
  defineQuery,
  defineUpdate,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow';
import {
  ROLLOUT_PAUSE_UPDATE,
  ROLLOUT_RESUME_UPDATE,
  ROLLOUT_ROLLBACK_UPDATE,
  ROLLOUT_STATE_QUERY,
  type RolloutActivities,
  type RolloutControl,
  type RolloutInput,
  type RolloutState,
} from './rollout.contracts.js';
import { ORCHESTRATOR_TASK_QUEUE } from './compile-model.contracts.js';

export const rolloutStateQuery = defineQuery<RolloutState>(ROLLOUT_STATE_QUERY);
export const pauseRolloutUpdate = defineUpdate<RolloutState, [RolloutControl]>(ROLLOUT_PAUSE_UPDATE);
export const resumeRolloutUpdate = defineUpdate<RolloutState, [RolloutControl]>(ROLLOUT_RESUME_UPDATE);
export const rollbackRolloutUpdate = defineUpdate<RolloutState, [RolloutControl]>(ROLLOUT_ROLLBACK_UPDATE);

/** The error type an update fails with when the rollout already ended (the API answers ROLLOUT_FINISHED). */
export const ROLLOUT_FINISHED_FAILURE = 'ROLLOUT_FINISHED';

/**
 * One staged rollout, start to end (docs/fleet.md). For each stage: make it current, then check its gates every
 * `checkIntervalSeconds` until it has held them for `holdSeconds` (and seen `minReportsToPromote` reports of the
 * new version), then promote. A device class that breaks a gate is rolled back at once, by itself (its devices get
 * the previous version), while the others go on. When a stage has held and every class that ran the new version
 * was rolled back, there is nothing left to roll out to: the rollout halts and rolls back whole. (Not earlier: the
 * first class to report may be the one failing one, and the others are judged by their own reports.) Pause, resume and rollback are updates: they answer once recorded. A pause stops promotion
 * (devices keep what they have); the stage's hold starts over on resume. Durable: a worker restart resumes the
 * timers where they were.
 */
export async function rolloutWorkflow(input: RolloutInput): Promise<RolloutState> {
  const acts = proxyActivities<RolloutActivities>({
    taskQueue: input.orchestratorTaskQueue ?? ORCHESTRATOR_TASK_QUEUE,
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', backoffCoefficient: 2 },
  });
  const { gates, stages } = input;
  const state: RolloutState = { status: 'running', stageIndex: 0, percent: stages[0], holdStartedAt: Date.now() };
  let rollback: RolloutControl | null = null;
  let changing = Promise.resolve();

  const finished = (): boolean => state.status === 'completed' || state.status === 'rolled_back';
  const refuseWhenFinished = (): void => {
    if (finished()) {
      throw ApplicationFailure.nonRetryable(
        `The rollout already ${state.status.replace('_', ' ')}.`,
        ROLLOUT_FINISHED_FAILURE,
      );
    }
  };
  // Updates run one at a time, in order, against the workflow's own state.
  const serially = async (change: () => Promise<void>): Promise<RolloutState> => {
    const run = changing.then(change);
    changing = run.catch(() => undefined);
    await run;
    return { ...state };
  };

  setHandler(rolloutStateQuery, () => ({ ...state }));
  setHandler(
    pauseRolloutUpdate,
    (control) =>
      serially(async () => {
        if (state.status !== 'running') return;
        state.status = 'paused';
        await acts.setPaused({ rolloutId: input.rolloutId, paused: true, control });
      }),
    { validator: (_control: RolloutControl) => refuseWhenFinished() },
  );
  setHandler(
    resumeRolloutUpdate,
    (control) =>
      serially(async () => {
        if (state.status !== 'paused') return;
        state.status = 'running';
        state.holdStartedAt = Date.now();
        await acts.setPaused({ rolloutId: input.rolloutId, paused: false, control });
      }),
    { validator: (_control: RolloutControl) => refuseWhenFinished() },
  );
  setHandler(
    rollbackRolloutUpdate,
    async (control) => {
      rollback ??= control;
      await condition(finished);
      return { ...state };
    },
    { validator: (_control: RolloutControl) => refuseWhenFinished() },
  );

  const rollBack = async (control: RolloutControl, halted = false): Promise<RolloutState> => {
    await changing;
    await acts.finishRollout({ rolloutId: input.rolloutId, outcome: 'rolled_back', control, halted });
    state.status = 'rolled_back';
    return { ...state };
  };

  for (let stageIndex = 0; stageIndex < stages.length; stageIndex++) {
    state.stageIndex = stageIndex;
    state.percent = stages[stageIndex];
    await acts.enterStage({ rolloutId: input.rolloutId, stageIndex });
    state.holdStartedAt = Date.now();
    for (;;) {
      await condition(() => rollback !== null, `${gates.checkIntervalSeconds} seconds`);
      if (rollback) return rollBack(rollback);
      if (state.status === 'paused') {
        await condition(() => state.status !== 'paused' || rollback !== null);
        if (rollback) return rollBack(rollback);
        continue;
      }
      const verdict = await acts.evaluateGates({ rolloutId: input.rolloutId, stageIndex, gates });
      if (verdict.breaches.length > 0) {
        await acts.rollBackClasses({ rolloutId: input.rolloutId, stageIndex, breaches: verdict.breaches });
      }
      if (rollback) return rollBack(rollback); // asked for while the gates were read: never promote first
      if (Date.now() - state.holdStartedAt < gates.holdSeconds * 1000 || state.status !== 'running') continue;
      // The stage held. Nothing left to roll out to (every class that ran the new version was rolled back): halt.
      if (verdict.activeClasses === 0 && verdict.rolledBackClasses > 0) {
        return rollBack(
          {
            actor: 'gate',
            reason: `every device class that ran the new version broke a gate (${verdict.rolledBackClasses} rolled back)`,
          },
          true,
        );
      }
      if (verdict.newReports >= gates.minReportsToPromote) break;
    }
  }
  await changing;
  await acts.finishRollout({
    rolloutId: input.rolloutId,
    outcome: 'completed',
    control: { actor: 'gate', reason: 'every stage held its gates' },
  });
  state.status = 'completed';
  return { ...state };
}
