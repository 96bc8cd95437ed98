// The TypeScript SDK and the Python client against the real stack: the compiled API on an ephemeral
// port (a real URL, so presigned multipart uploads go straight to SeaweedFS), a real build worker, the real
// compiler. Covers compileRemote end to end, resumption, idempotency, cancellation, S3's part checksums,
// validation through the multipart path, and that the SDK's routes are exactly the API's OpenAPI routes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { loadKilnConfig } from '@kiln/config';
import {
  httpPutPart,
  KilnAbortError,
  KilnApiError,
  KilnClient,
  OPERATOR_ROUTES,
  type PartTransport,
  type ProgressEvent,
  ROUTES,
  type UploadState,
} from '@kiln/sdk';
import { objectKeys } from '@kiln/storage';
import { buildOfflineOpenApiDocument } from '../apps/api/src/openapi-offline.js';
import { makeWidePt2 } from '../libs/sdk/src/testing/make-pt2.js';
import {
  api,
  createTenant,
  FIXTURES_DIR,
  REPO_ROOT,
  startApi,
  storage,
  type TestTenant,
  waitForCompilation,
  WorkerProcess,
  type ApiProcess,
} from './support/kiln-harness.js';

const run = promisify(execFile);
// Every x86-64 host from v2 up builds v2 (a test never assumes the CPU it runs on).
const TARGET = 'linux-x86_64-v2';
const MiB = 1024 * 1024;
const PYTHON = path.resolve(REPO_ROOT, loadKilnConfig().KILN_PYTHON);

let app: ApiProcess;
let baseUrl: string;
let tenant: TestTenant;
let tmp: string;
let widePt2: string;
const worker = new WorkerProcess({ KILN_WORKER_TARGETS: TARGET });
const s3 = storage();

const client = (extra: Partial<ConstructorParameters<typeof KilnClient>[0]> = {}): KilnClient =>
  new KilnClient({ baseUrl, apiKey: tenant.key, ...extra });
const sha256File = async (p: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(p))
    .digest('hex');

before(async () => {
  app = await startApi();
  baseUrl = app.url;
  tenant = await createTenant(app, 'sdk');
  tmp = await mkdtemp(path.join(os.tmpdir(), 'kiln-sdk-e2e-'));
  // 8 float32 weights of 1024² (4 MiB each): 7 parts of 5 MiB, a real archive that passes validation.
  widePt2 = path.join(tmp, 'wide.pt2');
  await makeWidePt2(widePt2, { width: 1024, layers: 8, python: PYTHON });
  await worker.start();
});

after(async () => {
  await worker.stop();
  await app?.close();
  s3.client.destroy();
  await rm(tmp, { recursive: true, force: true });
});

describe('keys through the SDK', () => {
  test('a device token enrolled for one model, rotated, revoked: the revoked key is refused', async () => {
    const kiln = client();
    const device = await kiln.createKey({ kind: 'device', name: 'sdk fleet', models: ['sdk-model'] });
    assert.deepEqual([device.kind, device.models, device.revokedAt], ['device', ['sdk-model'], null]);
    assert.ok((await kiln.listKeys()).some((k) => k.id === device.id && !('key' in k)));
    const rotated = await kiln.rotateKey(device.id);
    assert.equal(rotated.previous.id, device.id);
    assert.ok(rotated.previous.revokedAt);
    const revoked = await kiln.revokeKey(rotated.id);
    assert.ok(revoked.revokedAt);
    const refused = await new KilnClient({ baseUrl, apiKey: rotated.key, retry: { retries: 0 } })
      .listTargets()
      .catch((err: unknown) => err);
    assert.ok(refused instanceof KilnApiError && refused.code === 'UNAUTHENTICATED', String(refused));
  });
});

describe('the SDK is the API', () => {
  test('every SDK route is in /openapi.json, and every non-operator route there is in the SDK', async () => {
    const doc = (await api(app).get('/openapi.json').expect(200)).body as {
      paths: Record<string, Record<string, unknown>>;
    };
    const served = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    const sdk = Object.values(ROUTES).map((r) => `${r.method} ${r.path}`);
    assert.deepEqual(
      sdk.filter((r) => !served.includes(r)),
      [],
      'SDK routes the API does not serve',
    );
    assert.deepEqual(
      served.filter((r) => !sdk.includes(r) && !(OPERATOR_ROUTES as readonly string[]).includes(r)),
      [],
      'API routes missing from the SDK (libs/sdk/src/routes.ts)',
    );
  });

  test('the running API serves the document the SDK types are generated from (built offline)', async () => {
    // scripts/generate-api-types.ts builds the document without a server (Nest preview mode); this holds that
    // document to the one the real API serves, so the generated types describe what clients actually get.
    const served: unknown = (await api(app).get('/openapi.json').expect(200)).body;
    const offline: unknown = JSON.parse(JSON.stringify(await buildOfflineOpenApiDocument()));
    assert.deepEqual(served, offline);
  });
});

describe('compileRemote', () => {
  test('uploads, compiles for one target with progress, returns artifacts that download verified and load', async () => {
    const events: ProgressEvent[] = [];
    const result = await client().compileRemote(path.join(FIXTURES_DIR, 'mlp.pt2'), {
      model: 'sdk-mlp',
      targets: [TARGET],
      resumeStateDir: path.join(tmp, 'state'),
      pollIntervalMs: 500,
      onProgress: (e) => events.push(e),
    });
    assert.equal(result.compilation.status, 'succeeded', JSON.stringify(result.compilation, null, 2));
    assert.ok(result.ok);
    assert.equal(result.model.name, 'sdk-mlp');
    assert.equal(result.version.fileSha256, await sha256File(path.join(FIXTURES_DIR, 'mlp.pt2')));
    assert.equal(result.targets.length, 1);
    assert.equal(result.targets[0].status, 'succeeded');
    assert.equal(result.artifacts.length, 1);
    assert.equal(result.targets[0].artifact?.id, result.artifacts[0].id);
    assert.ok(result.artifacts[0].verification.passed);

    const uploads = events.filter((e) => e.type === 'upload');
    assert.ok(uploads.length > 0);
    assert.equal(uploads.at(-1)!.uploadedBytes, result.version.sizeBytes);
    assert.ok(events.some((e) => e.type === 'uploaded'));
    const statuses = events.flatMap((e) => (e.type === 'build' ? [e.status] : []));
    assert.equal(statuses.at(-1), 'succeeded');
    assert.ok(statuses.includes('running'), `build statuses seen: ${statuses.join(', ')}`);

    // The compilation's event stream replays its final state and ends.
    const streamed = [];
    for await (const e of client().streamCompilationEvents(result.compilation.id)) streamed.push(e.event);
    assert.deepEqual(streamed, ['compilation', 'end']);

    const out = path.join(tmp, 'download');
    const dl = await client().download(result.artifacts[0].id, out);
    for (const part of dl.parts) assert.equal(await sha256File(part.path), part.sha256);
    assert.ok(dl.packagePath);
    // The assembled package is what AOTInductor loads: run it in a fresh Python.
    const { stdout } = await run(PYTHON, [
      '-c',
      [
        'import sys, torch',
        'm = torch._inductor.aoti_load_package(sys.argv[1])',
        'y = m(torch.randn(4, 64))',
        'print(tuple(y.shape))',
      ].join('\n'),
      dl.packagePath,
    ]);
    assert.match(stdout, /^\(4, /);
  });

  test('a retried call with the same idempotency key returns the same compilation and sends nothing again', async () => {
    let puts = 0;
    const counting: PartTransport = (req) => {
      puts++;
      return httpPutPart(req);
    };
    const opts = { model: 'sdk-idem', targets: [TARGET], wait: false, idempotencyKey: `ci-run-${Date.now()}` };
    const first = await client({ putPart: counting }).compileRemote(path.join(FIXTURES_DIR, 'mlp.pt2'), opts);
    const sentFirst = puts;
    const again = await client({ putPart: counting }).compileRemote(path.join(FIXTURES_DIR, 'mlp.pt2'), opts);
    assert.equal(again.compilation.id, first.compilation.id);
    assert.equal(again.version.id, first.version.id);
    assert.ok(again.upload.reused);
    assert.equal(puts, sentFirst, 'the second call uploaded parts again');
    const all = await client().listCompilations({ versionId: first.version.id });
    assert.equal(all.length, 1);
  });
});

describe('presigned multipart uploads', () => {
  test('an interrupted upload resumes and completes without re-sending the parts S3 already has', async () => {
    const stateDir = path.join(tmp, 'resume-state');
    let okPuts = 0;
    const crashing: PartTransport = async (req) => {
      if (okPuts >= 3) throw new Error('simulated crash of the uploading process');
      const res = await httpPutPart(req);
      if (res.status === 200) okPuts++;
      return res;
    };
    let uploadId = '';
    await assert.rejects(
      client({ putPart: crashing }).uploadModel(widePt2, {
        model: 'sdk-wide',
        partSize: 5 * MiB,
        concurrency: 1,
        resumeStateDir: stateDir,
        onProgress: (e) => {
          if (e.type === 'upload') uploadId = e.uploadId;
        },
      }),
      /simulated crash/,
    );
    const interrupted = (await api(app).get(`/v1/uploads/${uploadId}`).set(tenant.auth).expect(200))
      .body as UploadState;
    assert.equal(interrupted.status, 'uploading');
    assert.equal(interrupted.parts.length, 3);
    assert.ok(interrupted.partCount >= 6);

    let puts = 0;
    const counting: PartTransport = (req) => {
      puts++;
      return httpPutPart(req);
    };
    const resumed = await client({ putPart: counting }).uploadModel(widePt2, {
      model: 'sdk-wide',
      partSize: 5 * MiB,
      resumeStateDir: stateDir,
    });
    assert.equal(resumed.uploadId, uploadId);
    assert.ok(resumed.resumed);
    assert.equal(resumed.partsReused, 3);
    assert.equal(resumed.partsSent, interrupted.partCount - 3);
    assert.equal(puts, interrupted.partCount - 3, 'parts S3 already had were sent again');
    assert.equal(resumed.version.fileSha256, await sha256File(widePt2));
    const done = (await api(app).get(`/v1/uploads/${uploadId}`).set(tenant.auth).expect(200)).body as UploadState;
    assert.equal(done.status, 'completed');
    assert.equal(done.version?.id, resumed.version.id);
  });

  test("a corrupted part is refused by S3's checksum; the right bytes then complete the upload", async () => {
    const file = await readFile(path.join(FIXTURES_DIR, 'cnn.pt2'));
    const c = client();
    const model = await c.ensureModel('sdk-raw');
    const { upload } = await c.createUpload(model.id, { filename: 'cnn.pt2', sizeBytes: file.length });
    assert.equal(upload.partCount, 1);
    const sha256 = createHash('sha256').update(file).digest('base64');
    const [part] = (await c.requestPartUrls(upload.uploadId, [{ partNumber: 1, sha256 }])).parts;
    const corrupted = Buffer.from(file);
    corrupted[1000] ^= 0xff;
    const refused = await fetch(part.url, { method: 'PUT', headers: part.headers, body: corrupted });
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /<Code>BadDigest<\/Code>/);
    // Without the signed checksum header the request is not even accepted.
    const unsigned = await fetch(part.url, { method: 'PUT', body: file });
    assert.equal(unsigned.status, 403);
    assert.equal((await c.getUpload(upload.uploadId)).parts.length, 0);
    const incomplete = await c.completeUpload(upload.uploadId).catch((e: unknown) => e);
    assert.ok(incomplete instanceof KilnApiError && incomplete.code === 'UPLOAD_INCOMPLETE', String(incomplete));

    const accepted = await fetch(part.url, { method: 'PUT', headers: part.headers, body: file });
    assert.equal(accepted.status, 200);
    const version = await c.completeUpload(upload.uploadId, {
      sha256: createHash('sha256').update(file).digest('hex'),
    });
    assert.equal(version.sizeBytes, file.length);
    assert.equal(version.summary.contentHash, version.contentHash);
  });

  test('a bad archive through the multipart path is 422 with its PT2_* code, and nothing is stored', async () => {
    const truncated = (await readFile(path.join(FIXTURES_DIR, 'mlp.pt2'))).subarray(0, 200_000);
    const file = path.join(tmp, 'truncated.pt2');
    await writeFile(file, truncated);
    let uploadId = '';
    const err = await client()
      .uploadModel(file, {
        model: 'sdk-bad',
        resumeStateDir: false,
        onProgress: (e) => {
          if (e.type === 'upload') uploadId = e.uploadId;
        },
      })
      .catch((e: unknown) => e);
    assert.ok(err instanceof KilnApiError, String(err));
    assert.equal(err.status, 422);
    assert.equal(err.code, 'PT2_TRUNCATED');
    const model = await client().ensureModel('sdk-bad');
    assert.deepEqual(await client().listVersions(model.id), []);
    const upload = await client().getUpload(uploadId);
    assert.equal(upload.status, 'failed');
    assert.equal(upload.error?.code, 'PT2_TRUNCATED');
    assert.equal(await s3.size(objectKeys.modelVersion(tenant.id, upload.versionId)), null);
    // Completing again answers with the same error.
    const again = await client()
      .completeUpload(uploadId)
      .catch((e: unknown) => e);
    assert.ok(again instanceof KilnApiError && again.code === 'PT2_TRUNCATED');
  });

  test('a file whose bytes differ from the declared sha256 is refused (UPLOAD_CHECKSUM_MISMATCH)', async () => {
    const file = await readFile(path.join(FIXTURES_DIR, 'mlp.pt2'));
    const c = client();
    const model = await c.ensureModel('sdk-mismatch');
    const { upload } = await c.createUpload(model.id, { filename: 'mlp.pt2', sizeBytes: file.length });
    const sha256 = createHash('sha256').update(file).digest('base64');
    const [part] = (await c.requestPartUrls(upload.uploadId, [{ partNumber: 1, sha256 }])).parts;
    assert.equal((await fetch(part.url, { method: 'PUT', headers: part.headers, body: file })).status, 200);
    const err = await c.completeUpload(upload.uploadId, { sha256: '0'.repeat(64) }).catch((e: unknown) => e);
    assert.ok(
      err instanceof KilnApiError && err.code === 'UPLOAD_CHECKSUM_MISMATCH' && err.status === 422,
      String(err),
    );
    assert.equal(await s3.size(objectKeys.modelVersion(tenant.id, upload.versionId)), null);
  });

  test('uploads are tenant-scoped, limited in size, and cleanly aborted', async () => {
    const other = await createTenant(app, 'sdk-other');
    const c = client();
    const model = await c.ensureModel('sdk-scoped');
    const { upload } = await c.createUpload(model.id, { filename: 'x.pt2', sizeBytes: 10 * MiB });
    const foreign = new KilnClient({ baseUrl, apiKey: other.key });
    const hidden = await foreign.getUpload(upload.uploadId).catch((e: unknown) => e);
    assert.ok(hidden instanceof KilnApiError && hidden.code === 'UPLOAD_NOT_FOUND' && hidden.status === 404);
    const tooBig = await c
      .createUpload(model.id, { filename: 'x.pt2', sizeBytes: loadKilnConfig().KILN_MAX_UPLOAD_BYTES + 1 })
      .catch((e: unknown) => e);
    assert.ok(tooBig instanceof KilnApiError && tooBig.code === 'PAYLOAD_TOO_LARGE' && tooBig.status === 413);

    const aborted = await c.abortUpload(upload.uploadId);
    assert.equal(aborted.status, 'aborted');
    assert.equal((await c.abortUpload(upload.uploadId)).status, 'aborted'); // repeating is harmless
    const gone = await c
      .requestPartUrls(upload.uploadId, [{ partNumber: 1, sha256: 'A'.repeat(43) + '=' }])
      .catch((e: unknown) => e);
    assert.ok(gone instanceof KilnApiError && gone.code === 'UPLOAD_ABORTED' && gone.status === 410, String(gone));
  });
});

describe('cancellation', () => {
  test('aborting during the upload aborts the multipart upload on the server', async () => {
    const controller = new AbortController();
    let uploadId = '';
    const err = await client()
      .compileRemote(widePt2, {
        model: 'sdk-cancel-upload',
        targets: [TARGET],
        partSize: 5 * MiB,
        concurrency: 1,
        resumeStateDir: path.join(tmp, 'cancel-state'),
        signal: controller.signal,
        onProgress: (e) => {
          if (e.type === 'upload') {
            uploadId = e.uploadId;
            if (e.partsDone >= 1) controller.abort();
          }
        },
      })
      .catch((e: unknown) => e);
    assert.ok(err instanceof KilnAbortError, String(err));
    const state = (await api(app).get(`/v1/uploads/${uploadId}`).set(tenant.auth).expect(200)).body as UploadState;
    assert.equal(state.status, 'aborted');
    assert.equal(state.parts.length, 0);
  });

  test('aborting while waiting cancels the compilation on the server', async () => {
    const controller = new AbortController();
    let compilationId = '';
    const err = await client()
      .compileRemote(path.join(FIXTURES_DIR, 'cnn.pt2'), {
        model: 'sdk-cancel-compile',
        targets: [TARGET],
        pollIntervalMs: 300,
        resumeStateDir: false,
        signal: controller.signal,
        onProgress: (e) => {
          if (e.type === 'compilation') compilationId = e.compilationId;
          if (e.type === 'build' && e.status === 'running') controller.abort();
        },
      })
      .catch((e: unknown) => e);
    assert.ok(err instanceof KilnAbortError, String(err));
    const done = await waitForCompilation(app, tenant, compilationId, undefined, 3 * 60_000);
    assert.equal(done.status, 'cancelled');
    assert.equal(done.builds[0].status, 'cancelled');
  });
});

describe('the Python client', () => {
  test('compile_remote works from a plain Python script, for a path and for an ExportedProgram', async () => {
    const script = path.join(tmp, 'remote_compile_script.py');
    const pt2 = path.join(tmp, 'py-mlp.pt2');
    await copyFile(path.join(FIXTURES_DIR, 'mlp.pt2'), pt2);
    await writeFile(
      script,
      [
        'import dataclasses, json, os, sys',
        'import torch',
        'from kiln_runtime import compile_remote',
        'pt2, target = sys.argv[1], sys.argv[2]',
        'by_path = compile_remote(pt2, model="py-mlp", targets=[target], part_size=5 * 1024 * 1024, progress=False)',
        'ep = torch.export.load(pt2)',
        'by_program = compile_remote(ep, model="py-mlp", targets=[target], progress=False, idempotency_key="py-ep-1")',
        'again = compile_remote(ep, model="py-mlp", targets=[target], progress=False, idempotency_key="py-ep-1")',
        'def brief(r):',
        '    d = dataclasses.asdict(r)',
        '    for a in d["artifacts"]: a.pop("raw")',
        '    for t in d["targets"]:',
        '        if t["artifact"]: t["artifact"].pop("raw")',
        '    return d',
        'print(json.dumps({"byPath": brief(by_path), "byProgram": brief(by_program), "again": brief(again)}))',
      ].join('\n'),
    );
    const { stdout } = await run(PYTHON, [script, pt2, TARGET], {
      env: { ...process.env, KILN_API_URL: baseUrl, KILN_API_KEY: tenant.key, PYTHONWARNINGS: 'ignore' },
      cwd: tmp,
      maxBuffer: 16 * MiB,
      timeout: 15 * 60_000,
    });
    const out = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<
      'byPath' | 'byProgram' | 'again',
      {
        ok: boolean;
        status: string;
        version_id: string;
        compilation_id: string;
        artifacts: { target_id: string; speedup: number }[];
      }
    >;
    for (const r of [out.byPath, out.byProgram]) {
      assert.equal(r.status, 'succeeded', JSON.stringify(r));
      assert.ok(r.ok);
      assert.equal(r.artifacts.length, 1);
      assert.equal(r.artifacts[0].target_id, TARGET);
      assert.ok(r.artifacts[0].speedup > 0);
    }
    assert.equal(out.again.compilation_id, out.byProgram.compilation_id);
    const version = await client().getVersion(out.byPath.version_id);
    assert.equal(version.fileSha256, await sha256File(pt2));
  });
});
