// The device runtime (python/runtime, `kiln-device`) end to end on the real stack: the MLP fixture is compiled
// for every x86 target this host's worker serves, then the runtime CLI resolves against the compiled API (on an
// ephemeral port), downloads from SeaweedFS through presigned URLs, verifies signatures and hashes, loads the
// AOTInductor artifact and compares it with the portable graph. The same host capped to lower x86 levels
// (KILN_X86_LEVEL_CAP) gets the artifacts such a CPU can run; simulated devices get the portable graph;
// tampered parts and untrusted keys are refused before anything is loaded; tokens and tenancy hold.
//
// What the resolver should choose is written out in the test harness (expectedX86Choice), never asked of
// @kiln/matching, the library the resolver itself calls.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ArtifactManifest } from '@kiln/contracts';
import { type DeviceFingerprint, validateFingerprint } from '@kiln/matching';
import { objectKeys } from '@kiln/storage';
import {
  api,
  createTenant,
  deviceToken,
  fixture,
  objectBytes,
  REPO_ROOT,
  startApi,
  storedManifest,
  storage,
  type TestTenant,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
  type BuildHostTiming,
  expectedX86Choice,
  x86LevelOf,
  type ApiProcess,
} from './support/kiln-harness.js';

const KILN_DEVICE = path.join(REPO_ROOT, '.kiln', 'venv', 'bin', 'kiln-device');
const MODEL = 'device-mlp';

let app: ApiProcess;
let apiUrl: string;
let alice: TestTenant;
let bob: TestTenant;
let aliceDevice: string;
let bobDevice: string;
let modelId: string;
let versionId: string;
let scratch: string;
/** The API's public signing key: devices are enrolled with it (pinned), the runtime's default trust. */
let signingKey: string;
const worker = new WorkerProcess();
const s3 = storage();
/** The x86 targets this host's worker serves, lowest level first. */
let served: string[] = [];
/** Build-host speedup of each artifact, by target. */
const speedups: Record<string, BuildHostTiming> = {};

/** The resolver's expected choice for a device of this x86 level (the rule is written in the harness). */
const expectedChoice = (deviceLevel: number): string | null => expectedX86Choice(speedups, deviceLevel);

interface ArtifactBody {
  id: string;
  targetId: string;
  cacheKey: string;
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface RunOutput {
  chosen: { kind: string; targetId?: string; artifactId?: string };
  version: { number: number; selectedBy: string; channel: string | null };
  rejected: { targetId: string; reasons: string[] }[];
  ran: { kind: string; targetId: string | null; path: string };
  maxAbsError: number;
  atol: number;
  withinTolerance: boolean;
  eagerMs: number;
  modelMs: number;
  speedup: number;
  path?: string;
  verified?: { parts: { role: string; sha256: string; path: string }[] };
  error?: { code: string; message: string; details: { status?: number; apiCode?: string } };
}

/** Runs the runtime CLI as a device would; never throws on a non-zero exit (the test reads the code). */
function kilnDevice(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      KILN_DEVICE,
      args[0] === 'fingerprint' ? args : [...args, '--api', apiUrl, '--no-progress'],
      {
        cwd: scratch,
        env: {
          ...process.env,
          KILN_DEVICE_TOKEN: aliceDevice,
          KILN_SIGNING_PUBLIC_KEY: signingKey,
          KILN_TRUST_ON_FIRST_USE: '',
          ...env,
        },
        maxBuffer: 16 << 20,
        timeout: 300_000,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        if (process.env.KILN_TEST_VERBOSE) process.stderr.write(stderr);
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function json(result: CliResult): RunOutput {
  try {
    return JSON.parse(result.stdout) as RunOutput;
  } catch {
    throw new Error(`kiln-device printed no JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  }
}

const cacheDir = (name: string): string => path.join(scratch, 'caches', name);
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'kiln-device-e2e-'));
  app = await startApi();
  apiUrl = app.url;
  alice = await createTenant(app, 'device-alice');
  bob = await createTenant(app, 'device-bob');
  aliceDevice = await deviceToken(app, alice);
  bobDevice = await deviceToken(app, bob);
  signingKey = ((await api(app).get('/v1/signing-keys').expect(200)).body as { publicKey: string }[])[0].publicKey;
  await worker.start();
  served = worker.servedX86Targets();
  assert.ok(served.length > 0, `the worker serves no x86 target:\n${worker.output}`);
  const uploaded = await uploadModel(app, alice, MODEL, await fixture('mlp.pt2'));
  modelId = uploaded.modelId;
  versionId = uploaded.versionId;
  const res = await api(app)
    .post(`/v1/versions/${versionId}/compilations`)
    .set(alice.auth)
    .send({ targets: served })
    .expect(201);
  const done = await waitForCompilation(app, alice, (res.body as { id: string }).id);
  assert.equal(done.status, 'succeeded', JSON.stringify(done, null, 2));
  const list = await api(app).get(`/v1/versions/${versionId}/artifacts`).set(alice.auth).expect(200);
  for (const a of list.body as ArtifactBody[]) {
    const manifest = await storedManifest<ArtifactManifest>(s3, alice.id, a.cacheKey);
    speedups[a.targetId] = { speedup: manifest.timing.speedup, speedupCi: manifest.timing.speedupCi };
  }
  assert.deepEqual(Object.keys(speedups).sort(), [...served].sort());
});

after(async () => {
  await worker.stop();
  await app?.close();
  s3.client.destroy();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('a device on this machine', () => {
  let hostFingerprint: DeviceFingerprint;

  test('fingerprint: the probe passes the server-side validator', async () => {
    const res = await kilnDevice(['fingerprint']);
    assert.equal(res.code, 0, res.stderr);
    const checked = validateFingerprint(JSON.parse(res.stdout));
    assert.ok(checked.ok, JSON.stringify(checked));
    hostFingerprint = checked.value;
    assert.equal(hostFingerprint.libc.name, 'glibc');
    assert.match(hostFingerprint.libstdcxx.glibcxx ?? '', /^3\.4\.\d+$/);
    assert.match(hostFingerprint.torch.version, /^2\.13\.0/);
  });

  test('the device probe and the worker probe agree on this CPU', () => {
    // Two probes written apart (Python on the device, TypeScript in the worker): the worker serves every x86 level
    // up to the host's, and the device reports that same level (both honour KILN_X86_LEVEL_CAP).
    assert.equal(hostFingerprint.cpu.x86Level, x86LevelOf(served[served.length - 1]));
    assert.deepEqual(
      served,
      ['linux-x86_64-v2', 'linux-x86_64-v3', 'linux-x86_64-v4'].slice(0, served.length),
      'served levels are contiguous from v2',
    );
  });

  test('run: picks the artifact the rule above expects for this host, and it matches the portable graph', async (t) => {
    const res = await kilnDevice(['run', MODEL, '--json', '--runs', '30'], { KILN_CACHE_DIR: cacheDir('host') });
    assert.equal(res.code, 0, res.stderr);
    const out = json(res);
    const hostLevel = hostFingerprint.cpu.x86Level!;
    const expected = expectedChoice(hostLevel);
    assert.equal(out.chosen.kind, 'artifact');
    assert.equal(out.chosen.targetId, expected);
    assert.equal(out.ran.kind, 'artifact');
    assert.equal(out.ran.targetId, expected);
    assert.deepEqual(out.rejected, [], 'every served target runs on its own build host');
    t.diagnostic(`build-host speedups ${JSON.stringify(speedups)}; chosen ${out.ran.targetId} on x86-64-v${hostLevel}`);

    assert.equal(out.withinTolerance, true);
    assert.ok(out.maxAbsError <= out.atol, `max abs error ${out.maxAbsError}`);
    assert.ok(out.eagerMs > 0 && out.modelMs > 0);
    t.diagnostic(
      `on this device: portable ${out.eagerMs.toFixed(3)} ms, artifact ${out.modelMs.toFixed(3)} ms, ` +
        `speedup ${out.speedup.toFixed(2)}x, max abs error ${out.maxAbsError.toExponential(2)}`,
    );
    // The explanation in words: the choice, its reasons, and the rules it passed.
    assert.match(res.stderr, new RegExp(`chosen: ${out.ran.targetId} \\(artifact`));
    assert.match(res.stderr, /verified and loaded artifact .* signature ok, parts sha256 ok/);
    assert.match(res.stderr, new RegExp(`x86-64-v\\d ≤ this CPU's x86-64-v${hostLevel} \\(from its CPU flags\\)`));
  });

  test('the same host capped to each lower x86 level gets what such a CPU runs, and the reasons say why', async (t) => {
    const hostLevel = hostFingerprint.cpu.x86Level!;
    if (hostLevel <= 2) {
      t.skip(`this host is x86-64-v${hostLevel}: no lower served level to cap to`);
      return;
    }
    for (let cap = hostLevel - 1; cap >= 2; cap--) {
      const res = await kilnDevice(['run', MODEL, '--json', '--runs', '5'], {
        KILN_CACHE_DIR: cacheDir('host'),
        KILN_X86_LEVEL_CAP: String(cap),
      });
      assert.equal(res.code, 0, res.stderr);
      const out = json(res);
      assert.equal(out.chosen.targetId, expectedChoice(cap), `capped at v${cap}`);
      assert.equal(out.withinTolerance, true);
      const tooHigh = served.filter((tgt) => x86LevelOf(tgt) > cap);
      assert.deepEqual(out.rejected.map((r) => r.targetId).sort(), tooHigh.sort(), `capped at v${cap}`);
      for (const r of out.rejected) {
        assert.ok(
          r.reasons.some((reason) => reason.includes(`this CPU is x86-64-v${cap}`)),
          `${r.targetId}: ${JSON.stringify(r.reasons)}`,
        );
      }
      t.diagnostic(`capped at v${cap}: chosen ${out.chosen.targetId}, rejected ${tooHigh.join(', ')}`);
    }
  });

  test('channels: name@prod resolves to the version the channel points at', async () => {
    await api(app).put(`/v1/models/${modelId}/channels/prod`).set(alice.auth).send({ version: 1 }).expect(200);
    const res = await kilnDevice(['fetch', `${MODEL}@prod`, '--json'], { KILN_CACHE_DIR: cacheDir('host') });
    assert.equal(res.code, 0, res.stderr);
    const out = json(res);
    assert.deepEqual(out.version, { id: versionId, number: 1, selectedBy: 'channel', channel: 'prod' });
    assert.equal(out.chosen.kind, 'artifact');
    const stdoutPath = await kilnDevice(['fetch', `${MODEL}@prod`], { KILN_CACHE_DIR: cacheDir('host') });
    assert.equal(stdoutPath.stdout.trim(), out.path);
    assert.match(stdoutPath.stderr, /resolved device-mlp v1 \(channel prod\)/);
  });
});

describe('simulated devices with no compatible artifact get the portable graph', () => {
  const devices: Record<string, (fp: DeviceFingerprint) => DeviceFingerprint> = {
    'torch 2.12.0': (fp) => ({ ...fp, torch: { version: '2.12.0+cpu', cuda: null } }),
    'an aarch64 device': (fp) => ({
      ...fp,
      arch: 'aarch64',
      cpu: { model: 'Neoverse-V1', flags: ['fp', 'asimd', 'aes', 'sha2'] },
    }),
  };
  for (const [name, change] of Object.entries(devices)) {
    test(name, async () => {
      const probe = await kilnDevice(['fingerprint']);
      const file = path.join(scratch, `${name.replace(/\W+/g, '-')}.json`);
      await writeFile(file, JSON.stringify(change(JSON.parse(probe.stdout) as DeviceFingerprint)));
      const res = await kilnDevice(['run', MODEL, '--fingerprint', file, '--json', '--runs', '5'], {
        KILN_CACHE_DIR: cacheDir('simulated'),
      });
      assert.equal(res.code, 0, res.stderr);
      const out = json(res);
      assert.equal(out.chosen.kind, 'portable');
      assert.equal(out.ran.kind, 'portable');
      assert.equal(out.withinTolerance, true);
      assert.deepEqual(out.rejected.map((r) => r.targetId).sort(), [...served].sort());
      const why = name.startsWith('torch')
        ? /this device runs torch 2\.12\.0 \(2\.12\.0\+cpu\): compiled artifacts need the exact torch release/
        : /built for x86_64 CPUs; this device is aarch64/;
      for (const r of out.rejected)
        assert.ok(
          r.reasons.some((reason) => why.test(reason)),
          JSON.stringify(r),
        );
      assert.match(res.stderr, /chosen: the portable graph/);
      assert.match(res.stderr, new RegExp(`rejected: ${served[served.length - 1]}`));
    });
  }
});

describe('tampering is refused before anything is loaded', () => {
  test('a flipped byte in a cached part is caught; the part is fetched again and verified', async () => {
    const fetched = json(await kilnDevice(['fetch', MODEL, '--json'], { KILN_CACHE_DIR: cacheDir('host') }));
    const code = fetched.verified!.parts.find((p) => p.role === 'code')!;
    const bytes = await readFile(code.path);
    bytes[bytes.length >> 1] ^= 0x01;
    await writeFile(code.path, bytes);

    const res = await kilnDevice(['run', MODEL, '--json', '--runs', '3'], { KILN_CACHE_DIR: cacheDir('host') });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /cached blob .* failed its check .* corrupted or tampered; deleted/);
    assert.equal(sha256(await readFile(code.path)), code.sha256);
    assert.equal(json(res).withinTolerance, true);
  });

  test('a part changed in storage is refused (exit 5), and nothing is loaded', async () => {
    const fetched = json(await kilnDevice(['fetch', MODEL, '--json'], { KILN_CACHE_DIR: cacheDir('host') }));
    const weights = fetched.verified!.parts.find((p) => p.role === 'weights')!;
    const key = objectKeys.blob(alice.id, weights.sha256);
    const original = await objectBytes(s3, key);
    const tampered = Buffer.from(original);
    tampered[100] ^= 0x01;
    await s3.putBytes(key, tampered);
    try {
      const res = await kilnDevice(['run', MODEL, '--json'], { KILN_CACHE_DIR: cacheDir('fresh-1') });
      assert.equal(res.code, 5, res.stderr);
      assert.equal(json(res).error?.code, 'INTEGRITY_FAILED');
      assert.match(res.stderr, /do not match the signed manifest/);
      assert.doesNotMatch(res.stderr, /verified and loaded/);
    } finally {
      await s3.putBytes(key, original);
    }
  });

  test('a manifest changed in storage is refused (exit 5)', async () => {
    const list = await api(app).get(`/v1/versions/${versionId}/artifacts`).set(alice.auth).expect(200);
    const keys = (
      await Promise.all(
        (list.body as ArtifactBody[]).map((a) => s3.listKeys(objectKeys.manifestsOf(alice.id, a.cacheKey))),
      )
    ).flat();
    const originals = await Promise.all(keys.map((k) => objectBytes(s3, k)));
    try {
      // One byte more (a trailing space): still valid JSON, no longer the signed bytes.
      for (const [i, key] of keys.entries()) await s3.putBytes(key, Buffer.concat([originals[i], Buffer.from(' ')]));
      const res = await kilnDevice(['fetch', MODEL, '--json'], { KILN_CACHE_DIR: cacheDir('fresh-2') });
      assert.equal(res.code, 5, res.stderr);
      assert.equal(json(res).error?.code, 'INTEGRITY_FAILED');
      assert.match(res.stderr, /manifest of linux-x86_64-v\d/);
    } finally {
      for (const [i, key] of keys.entries()) await s3.putBytes(key, originals[i]);
    }
  });

  test('a manifest signed by a key the device does not trust is refused (exit 5)', async () => {
    const { publicKey } = generateKeyPairSync('ed25519');
    const pinned = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const res = await kilnDevice(['run', MODEL, '--json'], {
      KILN_CACHE_DIR: cacheDir('fresh-3'),
      KILN_SIGNING_PUBLIC_KEY: pinned,
    });
    assert.equal(res.code, 5, res.stderr);
    assert.equal(json(res).error?.code, 'UNKNOWN_SIGNING_KEY');
    assert.doesNotMatch(res.stderr, /verified and loaded/);
    // Pinning the key the API publishes works.
    const keys = await api(app).get('/v1/signing-keys').expect(200);
    const published = (keys.body as { publicKey: string }[])[0].publicKey;
    const ok = await kilnDevice(['fetch', MODEL, '--json'], {
      KILN_CACHE_DIR: cacheDir('fresh-3'),
      KILN_SIGNING_PUBLIC_KEY: published,
    });
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('with no key pinned or enrolled nothing verifies; enrolling with keys --pin, or asking for TOFU, does', async () => {
    const bare = { KILN_CACHE_DIR: cacheDir('enroll'), KILN_SIGNING_PUBLIC_KEY: '' };
    const refused = await kilnDevice(['fetch', MODEL, '--json'], bare);
    assert.equal(refused.code, 5, refused.stderr);
    assert.equal(json(refused).error?.code, 'UNKNOWN_SIGNING_KEY');
    assert.match(refused.stderr, /kiln-device keys --pin/);
    const pin = await kilnDevice(['keys', '--pin', signingKey, '--json'], bare);
    assert.equal(pin.code, 0, pin.stderr);
    assert.equal(json(pin).error, undefined);
    const ok = await kilnDevice(['fetch', MODEL, '--json'], bare);
    assert.equal(ok.code, 0, ok.stderr);
    const tofu = await kilnDevice(['fetch', MODEL, '--json', '--trust-on-first-use'], {
      ...bare,
      KILN_CACHE_DIR: cacheDir('tofu'),
    });
    assert.equal(tofu.code, 0, tofu.stderr);
    assert.match(tofu.stderr, /trusting signing key \w+ on first use/);
  });
});

describe('tokens and tenancy', () => {
  test('a wrong device token gets 401 UNAUTHENTICATED (exit 3)', async () => {
    const res = await kilnDevice(['fetch', MODEL, '--json'], {
      KILN_CACHE_DIR: cacheDir('auth'),
      KILN_DEVICE_TOKEN: 'kiln_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    });
    assert.equal(res.code, 3, res.stderr);
    assert.deepEqual(json(res).error?.details, { status: 401, apiCode: 'UNAUTHENTICATED' });
  });

  test("another tenant's model is invisible (404 NOT_FOUND), by name and by id", async () => {
    for (const ref of [MODEL, modelId]) {
      const res = await kilnDevice(['fetch', ref, '--json'], {
        KILN_CACHE_DIR: cacheDir('auth'),
        KILN_DEVICE_TOKEN: bobDevice,
      });
      assert.equal(res.code, 3, res.stderr);
      assert.equal(json(res).error?.details.status, 404);
      assert.equal(json(res).error?.details.apiCode, 'NOT_FOUND');
    }
  });

  test('the API key of the tenant resolves too; device tokens still cannot list models', async () => {
    const res = await kilnDevice(['fetch', MODEL, '--json'], {
      KILN_CACHE_DIR: cacheDir('host'),
      KILN_DEVICE_TOKEN: alice.key,
    });
    assert.equal(res.code, 0, res.stderr);
    await api(app).get('/v1/models').set('Authorization', `Bearer ${aliceDevice}`).expect(403);
  });
});
