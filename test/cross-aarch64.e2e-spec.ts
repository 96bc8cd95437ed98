// linux-aarch64 end to end on the real stack (issue 13): this x86 worker, with the cross toolchain that
// `scripts/setup.sh --cross` installs, cross-builds the MLP (dynamic batch) and the transformer block (softmax, GELU,
// layer norm) for aarch64 in the same compilation as an x86 target, and verifies each aarch64 artifact under
// qemu-aarch64 with PyPI's aarch64 torch. An aarch64 fingerprint resolves to the aarch64 artifact by the resolver's
// policy for unmeasured artifacts (named in the reasons), an x86 one never does, and the device runtime, itself run
// under qemu as an aarch64 device, resolves, downloads, verifies and runs it next to the portable graph.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { ArtifactManifest } from '@kiln/contracts';
import { DEBIAN_GRAVITON_FINGERPRINT } from '@kiln/matching';
import { objectKeys } from '@kiln/storage';
import {
  api,
  type ApiProcess,
  type ArtifactBody,
  createTenant,
  deviceToken,
  fixture,
  objectBytes,
  REPO_ROOT,
  startApi,
  storage,
  storedManifest,
  type TestTenant,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
} from './support/kiln-harness.js';

const run = promisify(execFile);
const AARCH64 = 'linux-aarch64';
const TOOLCHAIN_FILE = path.join(REPO_ROOT, '.kiln', 'toolchains', AARCH64, 'toolchain.json');

interface Toolchain {
  site: string;
  sysroot: string;
  python: string;
  qemu: string;
  torch: string;
}

let app: ApiProcess;
let tenant: TestTenant;
let device: string;
let signingKey: string;
let toolchain: Toolchain;
let x86Target: string;
let scratch: string;
const worker = new WorkerProcess();
const s3 = storage();
const models = ['mlp', 'transformer'] as const;
const built: Record<
  string,
  { versionId: string; artifacts: ArtifactBody[]; manifests: Record<string, ArtifactManifest> }
> = {};

before(async () => {
  toolchain = JSON.parse(readFileSync(TOOLCHAIN_FILE, 'utf8')) as Toolchain;
  scratch = await mkdtemp(path.join(tmpdir(), 'kiln-aarch64-e2e-'));
  app = await startApi();
  tenant = await createTenant(app, 'cross-aarch64');
  device = await deviceToken(app, tenant);
  signingKey = ((await api(app).get('/v1/signing-keys').expect(200)).body as { publicKey: string }[])[0].publicKey;
  await worker.start();
  assert.match(worker.output, /serving linux-aarch64 \(\d+ at a time\)/, `no linux-aarch64 queue:\n${worker.output}`);
  const x86 = worker.servedX86Targets();
  assert.ok(x86.length > 0, worker.output);
  x86Target = x86[0];
});

after(async () => {
  await worker.stop();
  await app?.close();
  s3.client.destroy();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('linux-aarch64, cross-built on this x86 worker', () => {
  test('one compilation per model builds the x86 target and linux-aarch64; each is verified', async (t) => {
    const compilations = await Promise.all(
      models.map(async (name) => {
        const up = await uploadModel(app, tenant, `a64-${name}`, await fixture(`${name}.pt2`));
        const res = await api(app)
          .post(`/v1/versions/${up.versionId}/compilations`)
          .set(tenant.auth)
          .send({ targets: [x86Target, AARCH64] })
          .expect(201);
        return { name, versionId: up.versionId, id: (res.body as { id: string }).id };
      }),
    );
    for (const c of compilations) {
      const done = await waitForCompilation(app, tenant, c.id);
      assert.equal(done.status, 'succeeded', JSON.stringify(done, null, 2));
      const list = await api(app).get(`/v1/versions/${c.versionId}/artifacts`).set(tenant.auth).expect(200);
      const artifacts = list.body as ArtifactBody[];
      assert.deepEqual(artifacts.map((a) => a.targetId).sort(), [AARCH64, x86Target].sort());
      const manifests: Record<string, ArtifactManifest> = {};
      for (const a of artifacts) manifests[a.targetId] = await storedManifest(s3, tenant.id, a.cacheKey);
      built[c.name] = { versionId: c.versionId, artifacts, manifests };

      const arm = manifests[AARCH64];
      assert.equal(arm.requires.arch, 'aarch64');
      assert.equal(arm.requires.x86Level, null);
      assert.equal(arm.requires.torch, toolchain.torch);
      assert.equal(arm.verification.passed, true);
      assert.ok(arm.verification.maxAbsError <= arm.verification.atol, `${c.name}: ${arm.verification.maxAbsError}`);
      assert.deepEqual(arm.verification.emulated, {
        emulator: 'qemu-aarch64',
        cpu: 'neoverse-n1',
        arch: 'aarch64',
        torch: toolchain.torch,
      });
      assert.equal(arm.timing.method, 'unmeasured');
      assert.equal(arm.timing.speedup, 0);
      assert.ok(arm.isaCheck.counts.neon > 0 && arm.isaCheck.counts.sve === 0, JSON.stringify(arm.isaCheck));
      // The stored code part: aarch64 machine code, and metadata that says so (the AOTI loader reads it).
      const code = arm.parts.find((p) => p.role === 'code')!;
      assert.deepEqual(await codePartMachine(code.sha256), { machines: ['linux/aarch64'], aotiMachine: 'aarch64' });
      // Freezing is on, and the weights still come out as their own part with the per-tensor index.
      const weights = arm.parts.find((p) => p.role === 'weights');
      assert.ok(weights?.tensors && weights.tensors.length > 0, JSON.stringify(arm.parts));
      // The x86 artifact of the same compilation is measured as always, and built for x86.
      assert.equal(manifests[x86Target].requires.arch, 'x86_64');
      assert.ok(manifests[x86Target].timing.speedup > 0);
      const log = await api(app).get(`/v1/compilations/${c.id}/builds/${AARCH64}/log`).set(tenant.auth).expect(200);
      assert.match((log.body as { log: string }).log, /cross build for aarch64: .*aarch64-linux-gnu-g\+\+/);
      t.diagnostic(
        `${c.name}: aarch64 max abs error ${arm.verification.maxAbsError.toExponential(2)} under qemu on ` +
          `${arm.verification.inputShapes.length} input sets; compiled in ${arm.build.compileSeconds} s ` +
          `(x86 ${manifests[x86Target].build.compileSeconds} s)`,
      );
    }
    // The MLP's batch is dynamic: the emulated check ran several batch sizes.
    const batches = new Set(built.mlp.manifests[AARCH64].verification.inputShapes.map((s) => s[0][0]));
    assert.ok(batches.size >= 3, `batches ${[...batches].join(', ')}`);
  });

  test('an aarch64 fingerprint resolves to the aarch64 artifact by policy, and evidence-only waits for devices', async () => {
    const resolve = (fingerprint: unknown, extra: Record<string, unknown> = {}) =>
      api(app)
        .post('/v1/resolve')
        .set('Authorization', `Bearer ${device}`)
        .send({ model: 'a64-mlp', fingerprint, ...extra })
        .expect(200)
        .then(
          (r) =>
            r.body as {
              artifact: { targetId: string; reasons: string[] } | null;
              rejected: { targetId: string; reasons: string[] }[];
              fallback: { reason: string };
            },
        );
    const arm = await resolve(DEBIAN_GRAVITON_FINGERPRINT);
    assert.equal(arm.artifact?.targetId, AARCH64, JSON.stringify(arm, null, 2));
    const reasons = (arm.artifact?.reasons ?? []).join('\n');
    assert.match(reasons, /verified under emulation \(qemu-aarch64, neoverse-n1\): correct, speed unmeasured/);
    assert.match(reasons, /served by policy unmeasuredArtifacts=serve/);
    assert.match(
      arm.rejected.find((r) => r.targetId === x86Target)?.reasons.join('\n') ?? '',
      /built for x86_64 CPUs; this device is aarch64/,
    );

    const waiting = await resolve(DEBIAN_GRAVITON_FINGERPRINT, { unmeasuredArtifacts: 'evidence-only' });
    assert.equal(waiting.artifact, null, JSON.stringify(waiting, null, 2));
    assert.match(waiting.fallback.reason, /not yet timed by devices under the unmeasuredArtifacts policy/);
    assert.match(
      waiting.rejected.find((r) => r.targetId === AARCH64)?.reasons.join('\n') ?? '',
      /policy unmeasuredArtifacts=evidence-only serves it once/,
    );
    const bad = await api(app)
      .post('/v1/resolve')
      .set('Authorization', `Bearer ${device}`)
      .send({ model: 'a64-mlp', fingerprint: DEBIAN_GRAVITON_FINGERPRINT, unmeasuredArtifacts: 'always' })
      .expect(400);
    assert.match(JSON.stringify(bad.body), /unmeasuredArtifacts/);
  });

  test('the device runtime, run under qemu as an aarch64 device, downloads, verifies and runs the artifact', async (t) => {
    const out = await runUnderQemu(['run', 'a64-mlp', '--json', '--runs', '3', '--warmup', '1']);
    assert.equal(out.code, 0, out.stderr.slice(-4000));
    const result = JSON.parse(out.stdout) as {
      chosen: { kind: string; targetId?: string };
      ran: { kind: string; targetId: string | null };
      withinTolerance: boolean;
      maxAbsError: number;
      atol: number;
      speedup: number;
    };
    assert.equal(result.chosen.targetId, AARCH64);
    assert.equal(result.ran.kind, 'artifact');
    assert.equal(result.ran.targetId, AARCH64);
    assert.equal(result.withinTolerance, true);
    assert.ok(result.maxAbsError <= result.atol);
    assert.match(out.stderr, /verified and loaded artifact .* signature ok, parts sha256 ok/);
    t.diagnostic(
      `under qemu: max abs error ${result.maxAbsError.toExponential(2)}, speedup ${result.speedup.toFixed(2)}x ` +
        '(emulated: says nothing of a real device)',
    );
  });
});

/** The machine type of every `.so` in a stored code part (read by kiln_runtime.machine_code) and its AOTI_MACHINE. */
async function codePartMachine(sha256: string): Promise<{ machines: string[]; aotiMachine: string }> {
  const file = path.join(scratch, `${sha256}.zip`);
  await writeFile(file, await objectBytes(s3, objectKeys.blob(tenant.id, sha256)));
  const script = [
    'import json, sys, zipfile',
    'from kiln_runtime.machine_code import code_target',
    'z = zipfile.ZipFile(sys.argv[1])',
    'machines = sorted({"/".join(code_target(z.read(n)[:64]) or ("?", "?")) for n in z.namelist() if n.endswith(".so")})',
    'meta = next(n for n in z.namelist() if n.endswith("_metadata.json"))',
    'print(json.dumps({"machines": machines, "aotiMachine": json.loads(z.read(meta))["AOTI_MACHINE"]}))',
  ].join('\n');
  const { stdout } = await run(path.join(REPO_ROOT, '.kiln', 'venv', 'bin', 'python'), ['-c', script, file]);
  return JSON.parse(stdout) as { machines: string[]; aotiMachine: string };
}

/** `python -m kiln_runtime ARGS` as an aarch64 device: the aarch64 python and torch under qemu-aarch64. */
function runUnderQemu(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      toolchain.qemu,
      [
        '-cpu',
        'neoverse-n1',
        '-L',
        toolchain.sysroot,
        toolchain.python,
        '-m',
        'kiln_runtime',
        ...args,
        '--api',
        app.url,
        '--no-progress',
      ],
      {
        cwd: scratch,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: scratch,
          PYTHONPATH: [path.join(REPO_ROOT, 'python', 'runtime'), toolchain.site].join(path.delimiter),
          PYTHONNOUSERSITE: '1',
          KILN_DEVICE_TOKEN: device,
          KILN_SIGNING_PUBLIC_KEY: signingKey,
          KILN_CACHE_DIR: path.join(scratch, 'cache'),
        },
        maxBuffer: 16 << 20,
        timeout: 600_000,
      },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
      },
    );
  });
}
