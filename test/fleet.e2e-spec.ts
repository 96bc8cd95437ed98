// Fleet evidence end to end on the real stack (issue 12): the compiled API and a build worker, PostgreSQL, Temporal,
// SeaweedFS, the real AOTInductor compiler, and 60 devices in 3 classes going through kiln-device's own code
// (test/support/fleet_devices.py drives kiln_runtime: resolve as itself with its device id, verify, load, run,
// report, flush its telemetry queue):
//   - "host": this machine's class, 20 devices that really run what they are served;
//   - "slow": 20 devices whose recorded figures say the compiled artifact runs slower than the portable graph there;
//   - "fails": 20 devices on which v1's artifact runs 3.8x faster (recorded) and v2's does not load (recorded).
// Only linux-x86_64-v2 is built (any x86-64 host from v2 up builds and runs it), for two versions of one model.
// Checked: device reports rank artifacts per class over the build host's figure (served, or refused as slower than
// the portable graph); a rollout of v2 10 % → 50 % → 100 % with short gate holds rolls the "fails" class back by
// itself while the others proceed to completion; a fallback whose signed manifest is missing, tampered with or
// swapped for another version's is refused before torch reads it; the dashboard's fleet view shows it all and its
// pause / resume / roll back buttons steer a second rollout. No timing assertions, no CPU assumptions.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { loadKilnConfig } from '@kiln/config';
import type { DeviceFingerprint } from '@kiln/matching';
import { ensureDashboardBuilt, launchChromium, screenshot } from './support/browser.js';
import {
  api,
  type ApiProcess,
  createTenant,
  fixture,
  REPO_ROOT,
  startApi,
  type TestTenant,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
} from './support/kiln-harness.js';

const PYTHON = path.join(REPO_ROOT, '.kiln', 'venv', 'bin', 'python');
const KILN_DEVICE = path.join(REPO_ROOT, '.kiln', 'venv', 'bin', 'kiln-device');
const TARGET = 'linux-x86_64-v2';
const MODEL = 'fleet-mlp';
const PER_CLASS = 20;
/** Recorded classes first: see devices(). */
const CLASSES = ['fails', 'slow', 'host'] as const;
type ClassName = (typeof CLASSES)[number];
/** Short gate holds (settings of the rollout itself, docs/fleet.md): a stage holds 12 s, gates checked every second. */
const GATES = {
  holdSeconds: 12,
  checkIntervalSeconds: 1,
  maxErrorRate: 0.2,
  minReports: 2,
  maxLatencyRatio: 4,
  minReportsToPromote: 1,
};

interface DeviceAnswer {
  name: string;
  class: ClassName;
  deviceId: string;
  version: number;
  arm: 'new' | 'previous' | null;
  rolloutReason: string | null;
  deviceClass: string | null;
  artifactId: string | null;
  targetId: string | null;
  basis: string | null;
  ran: string;
  outcome: string;
  telemetry: { sent: number; kept: number; error: string | null };
  error?: string;
  message?: string;
}

interface ResolveBody {
  version: { number: number };
  deviceClass: { key: string; label: string };
  rollout: { arm: string; reason: string } | null;
  artifact: { id: string; basis: string; speedup: number; reasons: string[] } | null;
  fallback: { reason: string; manifestUrl: string; manifestSha256: string; signature: string };
  rejected: { artifactId: string; reasons: string[] }[];
}

interface RolloutBody {
  id: string;
  status: string;
  stageIndex: number;
  percent: number;
  classes: { deviceClass: string; label: string; status: string; reason: string | null }[];
  events: { kind: string; deviceClass: string | null; message: string; actor: string }[];
}

/** The fleet helper process: one JSON request line per round, one JSON answer line back. */
class FleetDevices {
  private readonly child: ChildProcess;
  private readonly lines: Interface;
  private readonly waiting: ((line: string) => void)[] = [];
  stderr = '';

  constructor() {
    this.child = spawn(PYTHON, [path.join(REPO_ROOT, 'test', 'support', 'fleet_devices.py')], {
      cwd: REPO_ROOT,
      env: { ...process.env, KILN_TELEMETRY: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stderr!.on('data', (c: Buffer) => {
      this.stderr = (this.stderr + c.toString()).slice(-20_000);
      if (process.env.KILN_TEST_VERBOSE) process.stderr.write(c);
    });
    this.lines = createInterface({ input: this.child.stdout! });
    this.lines.on('line', (line) => this.waiting.shift()?.(line));
  }

  round(request: unknown): Promise<DeviceAnswer[]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fleet round timed out:\n${this.stderr}`)), 240_000);
      this.waiting.push((line) => {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { devices: DeviceAnswer[] }).devices);
      });
      this.child.stdin!.write(`${JSON.stringify(request)}\n`);
    });
  }

  close(): void {
    this.child.stdin!.end();
  }
}

let app: ApiProcess;
let tenant: TestTenant;
let deviceToken: string;
let publicKey: string;
let scratch: string;
let modelId: string;
const versionIds: Record<number, string> = {};
const artifactIds: Record<number, string> = {};
const buildHostSpeedup: Record<number, number> = {};
let hostFingerprint: DeviceFingerprint;
let fleet: FleetDevices;
const worker = new WorkerProcess();
let skipReason: string | null = null;
const fingerprints = {} as Record<ClassName, DeviceFingerprint>;

const RECORDED: Record<Exclude<ClassName, 'host'>, Record<string, unknown>> = {
  slow: { '1': { speedup: 0.4 }, '2': { speedup: 0.4 }, portableMs: 2.0 },
  fails: { '1': { speedup: 3.8 }, '2': { errorCode: 'LOAD_FAILED' }, portableMs: 2.0 },
};

/**
 * The fleet, recorded classes first: their devices answer in milliseconds, so every stage of a rollout hears from them
 * early in a round, however long this host's real runs take on a loaded machine.
 */
function devices(): unknown[] {
  return CLASSES.flatMap((cls) =>
    Array.from({ length: PER_CLASS }, (_, i) => ({
      name: `${cls}-${String(i).padStart(2, '0')}`,
      class: cls,
      cache: path.join(scratch, 'devices', `${cls}-${i}`),
      fingerprint: cls === 'host' ? null : fingerprints[cls],
      mode: cls === 'host' ? 'real' : 'recorded',
      recorded: cls === 'host' ? undefined : RECORDED[cls],
    })),
  );
}

async function round(model = `${MODEL}@prod`, version?: number): Promise<DeviceAnswer[]> {
  const answers = await fleet.round({
    api: app.url,
    token: deviceToken,
    pin: publicKey,
    model,
    version,
    devices: devices(),
  });
  const broken = answers.filter((a) => a.error || a.telemetry?.kept);
  assert.deepEqual(broken, [], `devices that failed to run or report:\n${fleet.stderr.slice(-4000)}`);
  return answers;
}

function resolveAs(cls: ClassName, extra: Record<string, unknown> = {}): Promise<ResolveBody> {
  return api(app)
    .post('/v1/resolve')
    .set('Authorization', `Bearer ${deviceToken}`)
    .send({ model: `${MODEL}@prod`, fingerprint: fingerprints[cls], ...extra })
    .expect(200)
    .then((r) => r.body as ResolveBody);
}

/**
 * Retries `check` until it passes (at most `ms`): resolver answers are cached for a few seconds (RESOLUTION_CACHE_TTL),
 * so fresh evidence reaches them within that time, not at once. Not a timing assertion: only an upper bound to wait.
 */
async function eventually<T>(check: () => Promise<T>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

async function rollout(id: string): Promise<RolloutBody> {
  return (await api(app).get(`/v1/rollouts/${id}`).set(tenant.auth).expect(200)).body as RolloutBody;
}

function kilnDevice(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      KILN_DEVICE,
      args,
      {
        cwd: scratch,
        env: { ...process.env, KILN_DEVICE_TOKEN: deviceToken, KILN_SIGNING_PUBLIC_KEY: publicKey, ...env },
        timeout: 300_000,
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'kiln-fleet-e2e-'));
  ensureDashboardBuilt();
  app = await startApi();
  tenant = await createTenant(app, 'fleet');
  const admin = { Authorization: `Bearer ${loadKilnConfig().KILN_ADMIN_TOKEN}` };
  deviceToken = (
    (
      await api(app)
        .post(`/v1/admin/tenants/${tenant.id}/keys`)
        .set(admin)
        .send({ kind: 'device', models: [MODEL] })
        .expect(201)
    ).body as { key: string }
  ).key;
  // Devices are enrolled with the API's signing key (pinned): the runtime's default trust.
  publicKey = ((await api(app).get('/v1/signing-keys').expect(200)).body as { publicKey: string }[])[0].publicKey;

  await worker.start();
  if (!worker.servedX86Targets().includes(TARGET)) {
    skipReason = `this host's worker does not serve ${TARGET} (below x86-64-v2?)`;
    return;
  }
  const v1 = await uploadModel(app, tenant, MODEL, await fixture('mlp.pt2'));
  modelId = v1.modelId;
  versionIds[1] = v1.versionId;
  const v2 = await api(app)
    .post(`/v1/models/${modelId}/versions?filename=mlp-retrained.pt2`)
    .set(tenant.auth)
    .set('Content-Type', 'application/octet-stream')
    .send(await fixture('mlp-retrained.pt2'))
    .expect(201);
  versionIds[2] = (v2.body as { id: string }).id;
  const compilations = await Promise.all(
    [1, 2].map(async (n) => {
      const res = await api(app)
        .post(`/v1/versions/${versionIds[n]}/compilations`)
        .set(tenant.auth)
        .send({ targets: [TARGET] })
        .expect(201);
      return waitForCompilation(app, tenant, (res.body as { id: string }).id);
    }),
  );
  for (const [i, c] of compilations.entries()) {
    assert.equal(c.status, 'succeeded', JSON.stringify(c, null, 2));
    artifactIds[i + 1] = c.builds[0].artifact!.id;
  }
  for (const n of [1, 2]) {
    const a = await api(app).get(`/v1/artifacts/${artifactIds[n]}`).set(tenant.auth).expect(200);
    buildHostSpeedup[n] = (a.body as { timing: { speedup: number } }).timing.speedup;
  }
  await api(app).put(`/v1/models/${modelId}/channels/prod`).set(tenant.auth).send({ version: 1 }).expect(200);

  const probe = await kilnDevice(['fingerprint', '--no-hostname'], {});
  hostFingerprint = JSON.parse(probe.stdout) as DeviceFingerprint;
  fingerprints.host = hostFingerprint;
  fingerprints.slow = {
    ...hostFingerprint,
    cpu: { ...hostFingerprint.cpu, model: 'Fleet test CPU S (recorded: slow)' },
  };
  fingerprints.fails = {
    ...hostFingerprint,
    cpu: { ...hostFingerprint.cpu, model: 'Fleet test CPU F (recorded: v2 fails)' },
  };
  fleet = new FleetDevices();
});

after(async () => {
  fleet?.close();
  await worker.stop();
  await app?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('fleet evidence', () => {
  test('60 devices in 3 classes report; the resolver ranks by device evidence over the build-host figure', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const answers = await round();
    assert.equal(answers.length, 3 * PER_CLASS);
    assert.ok(
      answers.every((a) => a.version === 1 && a.telemetry.sent === 1),
      'every device ran v1 and reported it',
    );
    assert.equal(new Set(answers.map((a) => a.deviceId)).size, 3 * PER_CLASS, 'each device has its own id');
    assert.equal(new Set(answers.map((a) => a.deviceClass)).size, 3, 'three device classes');
    assert.ok(
      answers.filter((a) => a.class === 'host').every((a) => a.outcome === 'ok'),
      'the host class really ran',
    );

    // "fails" devices reported v1's artifact 3.8x faster than the portable graph: that is what ranks it for them.
    const fails = await eventually(async () => {
      const answer = await resolveAs('fails');
      assert.equal(answer.artifact?.basis, 'device', JSON.stringify(answer.artifact?.reasons));
      return answer;
    });
    assert.equal(fails.artifact?.id, artifactIds[1]);
    assert.ok(Math.abs((fails.artifact?.speedup ?? 0) - 3.8) < 1e-6, `${fails.artifact?.speedup}`);
    const evidence = fails.artifact?.reasons.find((r) => r.startsWith('evidence:')) ?? '';
    const buildFigure = String(Number(buildHostSpeedup[1].toPrecision(3))).replace('.', '\\.');
    assert.match(evidence, new RegExp(`device reports decided .*the build host measured ${buildFigure}x`));

    // "slow" devices reported 0.4x: whatever the build host measured, they are served the portable graph.
    const slow = await resolveAs('slow');
    assert.equal(slow.artifact, null, JSON.stringify(slow.rejected));
    const refused = slow.rejected.find((r) => r.artifactId === artifactIds[1]);
    assert.match(
      refused?.reasons.join('\n') ?? '',
      /confidently slower than the portable graph on 20 runs of device class/,
    );
    assert.match(slow.fallback.reason, /refused by fleet evidence/);

    // This host's class ranks by what its 20 devices measured (served or refused, but by its own figures).
    const host = await resolveAs('host');
    const hostEvidence = host.artifact ? host.artifact.basis : host.rejected.map((r) => r.reasons.join(' ')).join(' ');
    assert.match(hostEvidence, host.artifact ? /^device$/ : /on 20 runs of device class/);
    t.diagnostic(
      `build host: v1 ${buildHostSpeedup[1]}x, v2 ${buildHostSpeedup[2]}x; this host's class: ` +
        (host.artifact ? `${host.artifact.speedup.toFixed(2)}x on its devices` : 'refused (slower on its devices)'),
    );
  });

  test('telemetry is idempotent per report id and checked against the tenant’s own records', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const reportId = uuid7();
    const batch = {
      deviceId: randomUUID(),
      fingerprint: fingerprints.fails,
      reports: [
        {
          reportId,
          modelId,
          versionId: versionIds[1],
          artifactId: artifactIds[1],
          ran: 'artifact',
          outcome: 'ok',
          latency: [],
        },
      ],
    };
    const send = (b: unknown): Promise<{ status: number; body: Record<string, unknown> }> =>
      api(app)
        .post('/v1/telemetry')
        .set('Authorization', `Bearer ${deviceToken}`)
        .send(b as object)
        .then((r) => r);
    const first = await send(batch);
    assert.equal(first.status, 200);
    assert.deepEqual([first.body.accepted, first.body.duplicates], [1, 0]);
    const again = await send(batch);
    assert.deepEqual([again.body.accepted, again.body.duplicates], [0, 1], 'a report sent twice is stored once');
    const other = await createTenant(app, 'fleet-other');
    const otherDevice = (
      (
        await api(app)
          .post(`/v1/admin/tenants/${other.id}/keys`)
          .set('Authorization', `Bearer ${loadKilnConfig().KILN_ADMIN_TOKEN}`)
          .send({ kind: 'device', models: ['*'] })
          .expect(201)
      ).body as { key: string }
    ).key;
    const foreign = await api(app)
      .post('/v1/telemetry')
      .set('Authorization', `Bearer ${otherDevice}`)
      .send({ ...batch, reports: [{ ...batch.reports[0], reportId: uuid7() }] });
    assert.equal(foreign.status, 200);
    assert.equal(
      (foreign.body as { accepted: number }).accepted,
      0,
      "another tenant cannot report on this tenant's model",
    );
    // A device token of this very tenant, enrolled for another model, cannot report on this one either.
    const otherModelDevice = (
      (
        await api(app)
          .post(`/v1/admin/tenants/${tenant.id}/keys`)
          .set('Authorization', `Bearer ${loadKilnConfig().KILN_ADMIN_TOKEN}`)
          .send({ kind: 'device', models: ['not-this-model'] })
          .expect(201)
      ).body as { key: string }
    ).key;
    const outOfScope = await api(app)
      .post('/v1/telemetry')
      .set('Authorization', `Bearer ${otherModelDevice}`)
      .send({ ...batch, reports: [{ ...batch.reports[0], reportId: uuid7() }] });
    assert.equal(outOfScope.status, 200);
    assert.equal(
      (outOfScope.body as { accepted: number }).accepted,
      0,
      'a device token reports only on the models it is enrolled for',
    );
    const bad = await send({ ...batch, reports: [{ ...batch.reports[0], reportId: randomUUID() }] });
    assert.equal(bad.status, 400, 'a report id must be a UUIDv7');
    assert.equal((bad.body as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
  });

  let rolloutId = '';
  const observations = new Map<string, { stage: number; arm: string | null; version: number }[]>();
  const classOf = new Map<string, ClassName>();

  test('a rollout 10 % → 50 % → 100 % of v2: the class it fails on rolls back by itself, the others proceed', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const started = await api(app)
      .post(`/v1/models/${modelId}/channels/prod/rollouts`)
      .set(tenant.auth)
      .send({ version: 2, stages: [10, 50, 100], gates: GATES })
      .expect(201);
    const r0 = started.body as RolloutBody;
    rolloutId = r0.id;
    assert.deepEqual([r0.status, r0.stageIndex, r0.percent], ['running', 0, 10]);
    // The rollout owns the channel until it ends.
    const second = await api(app)
      .post(`/v1/models/${modelId}/channels/prod/rollouts`)
      .set(tenant.auth)
      .send({ version: 2 })
      .expect(409);
    assert.equal((second.body as { error: { code: string } }).error.code, 'ROLLOUT_IN_PROGRESS');
    const moved = await api(app)
      .put(`/v1/models/${modelId}/channels/prod`)
      .set(tenant.auth)
      .send({ version: 2 })
      .expect(409);
    assert.equal((moved.body as { error: { code: string } }).error.code, 'ROLLOUT_IN_PROGRESS');

    let state = r0;
    for (let i = 0; i < 16 && (state.status === 'running' || state.status === 'paused'); i++) {
      const answers = await round();
      for (const a of answers) classOf.set(a.deviceId, a.class);
      const stage = answers.find((a) => a.rolloutReason)?.rolloutReason ?? '';
      for (const a of answers) {
        const stageIndex = Number(/stage (\d+)/.exec(a.rolloutReason ?? '')?.[1] ?? 0) - 1;
        const seen = observations.get(a.deviceId) ?? observations.set(a.deviceId, []).get(a.deviceId)!;
        seen.push({ stage: stageIndex, arm: a.arm, version: a.version });
      }
      state = await rollout(rolloutId);
      t.diagnostic(
        `round ${i + 1}: ${stage.slice(0, 60)} … new arm ${answers.filter((a) => a.arm === 'new').length}, now ${state.status} at ${state.percent} %`,
      );
    }
    assert.equal(state.status, 'completed', JSON.stringify(state.events, null, 2));
    const kinds = state.events.map((e) => e.kind);
    assert.deepEqual(kinds.filter((k) => k === 'promoted').length, 2, kinds.join(', '));
    assert.equal(kinds[0], 'started');
    assert.equal(kinds[kinds.length - 1], 'completed');
    const failsClass = (await resolveAs('fails')).deviceClass;
    const rolledBack = state.classes.filter((c) => c.status === 'rolled_back');
    assert.deepEqual(
      rolledBack.map((c) => c.deviceClass),
      [failsClass.key],
      JSON.stringify(state.classes),
    );
    assert.match(
      rolledBack[0].reason ?? '',
      /error-rate gate: \d+ of \d+ runs of the new version failed on this class \(LOAD_FAILED/,
    );
    const breach = state.events.find((e) => e.kind === 'class_rolled_back');
    assert.equal(breach?.actor, 'gate');
    assert.equal(state.classes.filter((c) => c.status === 'active').length, 2, 'host and slow proceeded');

    // Stages nest: a device that got v2 keeps it for the rest of the rollout (classes still in it), whatever stage it
    // was seen at (its last answers may come after the completion: v2 then too); at 100 % every such device has it.
    // (Answers are cached a few seconds, so the first ones after the start may still predate it: v1.)
    for (const [id, seen] of observations) {
      if (classOf.get(id) === 'fails') continue;
      const firstNew = seen.findIndex((o) => o.arm === 'new');
      if (firstNew >= 0) {
        assert.deepEqual(
          seen.slice(firstNew).filter((o) => o.version !== 2),
          [],
          `${id} left the rollout after joining it: ${JSON.stringify(seen)}`,
        );
      }
      for (const o of seen.filter((x) => x.stage === 2)) assert.equal(o.arm, 'new', `${id} at 100 %`);
    }
    assert.ok(
      new Set([...observations.values()].flat().map((o) => o.stage)).size >= 2,
      'devices were seen at more than one stage',
    );
  });

  test('after the rollout: v2 everywhere but on the class it failed on, with the history kept', async (t) => {
    if (skipReason || !rolloutId) return t.skip(skipReason ?? 'no rollout');
    await eventually(async () => assert.equal((await resolveAs('host')).rollout, null, 'the resolver saw it complete'));
    const answers = await round();
    for (const a of answers) {
      if (a.class === 'fails') {
        assert.equal(a.version, 1, `${a.name}: ${a.rolloutReason}`);
        assert.match(a.rolloutReason ?? '', /rolled back during the rollout/);
      } else {
        assert.equal(a.version, 2, a.name);
        assert.equal(a.arm, null);
      }
    }
    const channels = (await api(app).get(`/v1/models/${modelId}/channels`).set(tenant.auth).expect(200)).body as {
      name: string;
      versionNumber: number;
    }[];
    assert.deepEqual(
      channels.map((c) => [c.name, c.versionNumber]),
      [['prod', 2]],
    );
    const history = (await api(app).get(`/v1/models/${modelId}/channels/prod/history`).set(tenant.auth).expect(200))
      .body as { fromVersion: number | null; toVersion: number }[];
    assert.deepEqual(
      history.map((h) => [h.fromVersion, h.toVersion]),
      [
        [1, 2],
        [null, 1],
      ],
    );
  });

  test('devices pinned to v2: its artifact is quarantined for the class it fails on, and only for it', async (t) => {
    if (skipReason) return t.skip(skipReason);
    // Whether the rollout's failures already passed the threshold or this round's do: no device of the class runs v2's
    // artifact; each either fails to load it (before the quarantine) or is served the portable graph.
    const pinned = await round(MODEL, 2);
    for (const a of pinned.filter((x) => x.class === 'fails')) {
      assert.ok(a.outcome === 'failed' || a.artifactId === null, `${a.name}: ${a.outcome} ${a.artifactId}`);
    }
    const quarantine = await eventually(async () => {
      const answer = (
        await api(app)
          .post('/v1/resolve')
          .set('Authorization', `Bearer ${deviceToken}`)
          .send({ model: MODEL, version: 2, fingerprint: fingerprints.fails })
          .expect(200)
      ).body as ResolveBody;
      const rejected = answer.rejected.find((r) => r.artifactId === artifactIds[2]);
      assert.match(rejected?.reasons.join('\n') ?? '', /quarantined for device class .*LOAD_FAILED ×\d+/);
      return answer;
    });
    assert.equal(quarantine.artifact, null);
    // The host class is not affected: v2's artifact is still ranked for it (served, unless its own devices measured
    // it slower than the portable graph there).
    const host = (
      await api(app)
        .post('/v1/resolve')
        .set('Authorization', `Bearer ${deviceToken}`)
        .send({ model: MODEL, version: 2, fingerprint: fingerprints.host })
        .expect(200)
    ).body as ResolveBody;
    const hostRefusal = host.rejected.find((r) => r.artifactId === artifactIds[2])?.reasons.join(' ') ?? '';
    assert.doesNotMatch(hostRefusal, /quarantined/);
  });

  test('a tampered, swapped or unsigned fallback is refused before anything is loaded', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const v1 = (
      await api(app)
        .post('/v1/resolve')
        .set('Authorization', `Bearer ${deviceToken}`)
        .send({ model: MODEL, version: 1, fingerprint: hostFingerprint })
        .expect(200)
    ).body as ResolveBody & { fallback: Record<string, unknown> };
    const tamperedManifest = Buffer.from(JSON.stringify({ kind: 'portable', versionNumber: 99 }));
    let mode: 'none' | 'unsigned' | 'tampered' | 'swapped' = 'none';
    const proxy = await mitmProxy(
      app.url,
      (answer, self) => {
        const fb = answer.fallback as Record<string, unknown>;
        switch (mode) {
          case 'unsigned':
            delete fb.signature;
            delete fb.manifestUrl;
            break;
          case 'tampered':
            // The storage served other manifest bytes, and the answer's sha256 follows them: the signature fails.
            fb.manifestUrl = `${self}/tampered-manifest`;
            fb.manifestSha256 = createHash('sha256').update(tamperedManifest).digest('hex');
            break;
          case 'swapped':
            // v1's .pt2 and its genuinely signed manifest, handed out as v2's fallback.
            Object.assign(fb, v1.fallback);
            break;
          case 'none':
            break;
        }
      },
      tamperedManifest,
    );
    try {
      const expected = { unsigned: 'UNSIGNED_FALLBACK', tampered: 'SIGNATURE_INVALID', swapped: 'BINDING_MISMATCH' };
      for (const m of ['unsigned', 'tampered', 'swapped'] as const) {
        mode = m;
        const res = await kilnDevice(
          ['run', `${MODEL}@prod`, '--json', '--no-telemetry', '--api', proxy.url, '--no-progress'],
          {
            KILN_CACHE_DIR: path.join(scratch, 'tamper', m),
          },
        );
        assert.equal(res.code, 5, `${m}: ${res.stderr}`);
        const out = JSON.parse(res.stdout) as { error: { code: string } };
        assert.equal(out.error.code, expected[m], `${m}: ${res.stderr}`);
        assert.match(res.stderr, /Nothing was loaded/);
        assert.doesNotMatch(res.stderr, /verified and loaded|^ran: /m);
      }
      mode = 'none';
      const clean = await kilnDevice(
        ['run', `${MODEL}@prod`, '--json', '--no-telemetry', '--api', proxy.url, '--runs', '3'],
        {
          KILN_CACHE_DIR: path.join(scratch, 'tamper', 'clean'),
        },
      );
      assert.equal(clean.code, 0, `the untouched answer through the same proxy runs: ${clean.stderr}`);
    } finally {
      await proxy.close();
    }
  });

  test('the dashboard shows the fleet per class and steers a rollout (pause, resume, roll back)', async (t) => {
    if (skipReason) return t.skip(skipReason);
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const page: Page = await (await browser.newContext({ viewport: { width: 1360, height: 1000 } })).newPage();
      page.setDefaultTimeout(30_000);
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${app.url}/sign-in`);
      await page.getByLabel('API key').fill(tenant.key);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { level: 1, name: 'Models' }).waitFor();

      await page.goto(`${app.url}/models/${modelId}/channels`);
      await page.getByRole('link', { name: 'Fleet of prod' }).click();
      await page.getByRole('heading', { level: 1, name: `Fleet of ${MODEL}@prod` }).waitFor();
      const classes = page.getByRole('list', { name: 'Device classes', exact: true }).locator(':scope > li');
      await classes.nth(2).waitFor();
      assert.equal(await classes.count(), 3);
      const failing = page.locator('[data-class-label*="Fleet test CPU F"]');
      assert.equal(await failing.getAttribute('data-rollout-status'), 'rolled_back');
      await failing.getByText('Rolled back', { exact: true }).waitFor();
      await failing.locator(`tr[data-target="${TARGET}"][data-quarantined="true"]`).waitFor();
      // On-device speedup next to the build host's figure.
      const v1Row = failing.locator(`tr[data-target="${TARGET}"][data-quarantined="false"]`);
      assert.match((await v1Row.locator('.fleet-device-speedup').textContent()) ?? '', /3\.80×/);
      assert.match((await v1Row.locator('.fleet-build-speedup').textContent()) ?? '', /×|—/);
      const slowClass = page.locator('[data-class-label*="Fleet test CPU S"]');
      await slowClass
        .locator('[data-arm="current"]')
        .getByText(/portable graph/)
        .first()
        .waitFor();
      const history = page.getByRole('list', { name: 'Rollout history' });
      await history.locator('[data-event="class_rolled_back"]').waitFor();
      await history.locator('[data-event="completed"]').waitFor();
      await screenshot(page, '10-fleet');

      // A second rollout (back to v1), steered from the page. Long holds: only the buttons move it.
      await api(app)
        .post(`/v1/models/${modelId}/channels/prod/rollouts`)
        .set(tenant.auth)
        .send({ version: 1, gates: { holdSeconds: 3600, checkIntervalSeconds: 1 } })
        .expect(201);
      await page.reload();
      const controls = page.locator('[data-rollout-state]');
      await page.locator('[data-rollout-state="running"]').waitFor();
      await controls.getByRole('button', { name: 'Pause' }).click();
      await page.locator('[data-rollout-state="paused"]').waitFor();
      await history.locator('[data-event="paused"]').waitFor();
      await controls.getByRole('button', { name: 'Resume' }).click();
      await page.locator('[data-rollout-state="running"]').waitFor();
      await controls.getByRole('button', { name: 'Roll back' }).click();
      await page.locator('[data-rollout-state="rolled_back"]').waitFor();
      await history.locator('[data-event="rolled_back"]').waitFor();
      // The class the first rollout rolled back still keeps v1 (the channel stayed at that rollout's version).
      assert.equal(await failing.getAttribute('data-rollout-status'), 'rolled_back');
      await screenshot(page, '11-fleet-rolled-back');
      const after = (await api(app).get(`/v1/models/${modelId}/channels/prod/rollouts`).set(tenant.auth).expect(200))
        .body as RolloutBody[];
      assert.deepEqual(
        after[0].events.map((e) => e.kind),
        ['started', 'paused', 'resumed', 'rolled_back'],
      );
      assert.equal(after[0].events[1].actor.length, 36, 'the key that paused is recorded');
      const channels = (await api(app).get(`/v1/models/${modelId}/channels`).set(tenant.auth).expect(200)).body as {
        versionNumber: number;
      }[];
      assert.equal(channels[0].versionNumber, 2, 'a rolled-back rollout leaves the channel where it was');
      const finished = await api(app).post(`/v1/rollouts/${after[0].id}/pause`).set(tenant.auth).send({}).expect(409);
      assert.equal((finished.body as { error: { code: string } }).error.code, 'ROLLOUT_FINISHED');
      assert.deepEqual(errors, [], 'no uncaught errors in the page');
    } finally {
      await browser?.close();
    }
  });
});

/** A UUIDv7 made here (the server refuses anything else as a report id). */
function uuid7(): string {
  const rand = randomUUID().replace(/-/g, '');
  const variant = ((parseInt(rand[0], 16) & 0x3) | 0x8).toString(16);
  const h = `${Date.now().toString(16).padStart(12, '0')}7${rand.slice(1, 4)}${variant}${rand.slice(4, 19)}`;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * A man in the middle between a device and the API: forwards everything, lets `rewrite` change resolver answers,
 * and serves `tampered` at /tampered-manifest (what a compromised store would serve).
 */
async function mitmProxy(
  upstream: string,
  rewrite: (answer: Record<string, unknown>, self: string) => void,
  tampered: Buffer,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/tampered-manifest') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': tampered.length });
      res.end(tampered);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const headers = Object.fromEntries(
          Object.entries(req.headers).filter(([k]) => !['host', 'content-length', 'connection'].includes(k)),
        ) as Record<string, string>;
        const upstreamRes = await fetch(`${upstream}${req.url}`, {
          method: req.method,
          headers,
          body: chunks.length ? Buffer.concat(chunks) : undefined,
        });
        let body = Buffer.from(await upstreamRes.arrayBuffer());
        if (req.url === '/v1/resolve' && upstreamRes.ok) {
          const answer = JSON.parse(body.toString()) as Record<string, unknown>;
          rewrite(answer, url);
          body = Buffer.from(JSON.stringify(answer));
        }
        res.writeHead(upstreamRes.status, { 'Content-Type': 'application/json', 'Content-Length': body.length });
        res.end(body);
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return { url, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
