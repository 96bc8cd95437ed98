// The rollout workflow against a real Temporal dev server (scripts/stack.sh starts one), with in-memory activities on
// a task queue unique to this test: promotion stage by stage after the hold, per-class rollback while the others go
// on, the halt when nothing is left to roll out to, promotion waiting for reports, and pause / resume / rollback as
// updates. Ends each run by replaying its recorded history (determinism).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { loadKilnConfig } from '@kiln/config';
import {
  type GateBreach,
  type GateVerdict,
  ROLLOUT_PAUSE_UPDATE,
  ROLLOUT_RESUME_UPDATE,
  ROLLOUT_ROLLBACK_UPDATE,
  ROLLOUT_STATE_QUERY,
  ROLLOUT_WORKFLOW,
  type RolloutActivities,
  type RolloutControl,
  type RolloutGateSettings,
  type RolloutInput,
  type RolloutState,
  rolloutWorkflowId,
  WORKFLOWS_PATH,
} from '@kiln/temporal';

const config = loadKilnConfig();
const queue = `test-rollout-${randomUUID().slice(0, 8)}`;

/** What the activities recorded, per rollout: the calls in order. */
const calls = new Map<string, string[]>();
/** What evaluateGates answers for a rollout at a stage (the test's script). */
const scripts = new Map<string, (stageIndex: number) => GateVerdict>();

const log = (id: string, entry: string): void => void (calls.get(id) ?? calls.set(id, []).get(id)!).push(entry);

const activities: RolloutActivities = {
  async enterStage({ rolloutId, stageIndex }) {
    log(rolloutId, `stage ${stageIndex}`);
  },
  async evaluateGates({ rolloutId, stageIndex }) {
    return scripts.get(rolloutId)!(stageIndex);
  },
  async rollBackClasses({ rolloutId, breaches }) {
    for (const b of breaches) log(rolloutId, `rolled back ${b.deviceClass}`);
  },
  async setPaused({ rolloutId, paused, control }) {
    log(rolloutId, `${paused ? 'paused' : 'resumed'} by ${control.actor}`);
  },
  async finishRollout({ rolloutId, outcome, control, halted }) {
    log(rolloutId, `${halted ? 'halted, ' : ''}${outcome} by ${control.actor}`);
  },
};

const gates: RolloutGateSettings = {
  holdSeconds: 1,
  checkIntervalSeconds: 1,
  maxErrorRate: 0.05,
  minReports: 2,
  maxLatencyRatio: 1.25,
  minReportsToPromote: 1,
};

function breach(deviceClass: string): GateBreach {
  return { deviceClass, label: deviceClass, gate: 'error-rate', message: 'failed', detail: {} };
}

let nativeConnection: NativeConnection;
let connection: Connection;
let client: Client;
let worker: Worker;
let running: Promise<void>;

before(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  nativeConnection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  worker = await Worker.create({
    connection: nativeConnection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: queue,
    workflowsPath: WORKFLOWS_PATH,
    activities,
  });
  running = worker.run();
});

after(async () => {
  worker.shutdown();
  await running;
  await nativeConnection.close();
  await connection.close();
});

async function start(script: (stageIndex: number) => GateVerdict, overrides: Partial<RolloutGateSettings> = {}) {
  const input: RolloutInput = {
    rolloutId: randomUUID(),
    tenantId: randomUUID(),
    stages: [10, 50, 100],
    gates: { ...gates, ...overrides },
    orchestratorTaskQueue: queue,
  };
  scripts.set(input.rolloutId, script);
  const handle = await client.workflow.start(ROLLOUT_WORKFLOW, {
    taskQueue: queue,
    workflowId: rolloutWorkflowId(input.rolloutId),
    args: [input],
  });
  return { id: input.rolloutId, handle };
}

const healthy: GateVerdict = { breaches: [], newReports: 5, activeClasses: 2, rolledBackClasses: 0 };

describe('rollout workflow', () => {
  test('promotes stage by stage; a class that breaks a gate is rolled back alone and the rest completes', async () => {
    let rolledBack = false;
    const { id, handle } = await start((stage) => {
      if (stage === 1 && !rolledBack) {
        rolledBack = true;
        return { breaches: [breach('dc-fails')], newReports: 3, activeClasses: 1, rolledBackClasses: 1 };
      }
      return { ...healthy, activeClasses: 1, rolledBackClasses: rolledBack ? 1 : 0 };
    });
    const result = (await handle.result()) as RolloutState;
    assert.deepEqual([result.status, result.stageIndex, result.percent], ['completed', 2, 100]);
    assert.deepEqual(calls.get(id), ['stage 0', 'stage 1', 'rolled back dc-fails', 'stage 2', 'completed by gate']);
    await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, await handle.fetchHistory(), handle.workflowId);
  });

  test('halts and rolls back whole once a stage held with every class that ran it rolled back', async () => {
    const { id, handle } = await start((stage) =>
      stage === 0 ? { breaches: [breach('dc-a')], newReports: 0, activeClasses: 0, rolledBackClasses: 1 } : healthy,
    );
    const result = (await handle.result()) as RolloutState;
    assert.equal(result.status, 'rolled_back');
    const seen = calls.get(id) ?? [];
    assert.equal(seen[0], 'stage 0');
    assert.ok(seen.includes('rolled back dc-a'));
    assert.ok(!seen.includes('stage 1'), 'never promoted');
    assert.equal(seen.at(-1), 'halted, rolled_back by gate');
  });

  test('waits for reports before promoting, and pause / resume / rollback are updates answered once recorded', async () => {
    let reports = 0;
    const { id, handle } = await start(() => ({ ...healthy, newReports: reports }));
    await new Promise((r) => setTimeout(r, 3000));
    let state = await handle.query<RolloutState>(ROLLOUT_STATE_QUERY);
    assert.deepEqual([state.status, state.stageIndex], ['running', 0], 'no report, no promotion, however long it held');

    const control: RolloutControl = { actor: 'key-1', reason: 'looking at a dashboard' };
    state = await handle.executeUpdate<RolloutState, [RolloutControl]>(ROLLOUT_PAUSE_UPDATE, { args: [control] });
    assert.equal(state.status, 'paused');
    assert.equal(calls.get(id)?.at(-1), 'paused by key-1', 'recorded before the update answered');
    reports = 10;
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await handle.query<RolloutState>(ROLLOUT_STATE_QUERY)).stageIndex, 0, 'paused: no promotion');
    state = await handle.executeUpdate<RolloutState, [RolloutControl]>(ROLLOUT_RESUME_UPDATE, { args: [control] });
    assert.equal(state.status, 'running');
    for (let i = 0; i < 50 && state.stageIndex === 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      state = await handle.query<RolloutState>(ROLLOUT_STATE_QUERY);
    }
    assert.equal(state.stageIndex, 1, 'promoted once resumed with reports');
    state = await handle.executeUpdate<RolloutState, [RolloutControl]>(ROLLOUT_ROLLBACK_UPDATE, {
      args: [{ actor: 'key-2' }],
    });
    assert.equal(state.status, 'rolled_back');
    assert.equal(calls.get(id)?.at(-1), 'rolled_back by key-2');
    assert.equal(((await handle.result()) as RolloutState).status, 'rolled_back');
    // A finished rollout takes no more updates.
    await assert.rejects(handle.executeUpdate(ROLLOUT_PAUSE_UPDATE, { args: [control] }));
    await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, await handle.fetchHistory(), handle.workflowId);
  });
});
