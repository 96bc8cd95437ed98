// Every route of the OpenAPI document, fuzzed by Schemathesis (PyPI, in the venv) against the compiled API as
// `npm start` runs it: invalid and edge-case path parameters, queries, headers and bodies, with each kind of
// credential (an API key, a device token, the admin token, none). What must hold for every answer: never a 5xx,
// the status is one the document lists, the body matches the documented schema (errors: the one `ErrorBody`
// shape), schema-violating input is refused, routes that need a key refuse to work without one, and a documented
// path asked with another method gets 405.
//
// Real records (a model with a version, a compilation, an upload, a channel) are handed to Schemathesis so that it
// reaches the handlers behind the 404s, not only the routing. No worker runs: the compilation waits for one and
// fails with NO_WORKER. `positive_data_acceptance` is left out on purpose: much valid-looking input is refused by
// rules no schema can say (a body that is not a .pt2, an upload already aborted, "exactly one of versionId or
// version"), and those answers are 4xx with a code, which the other checks hold to the documented shape.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadKilnConfig } from '@kiln/config';
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

const SCHEMATHESIS = path.join(REPO_ROOT, '.kiln', 'venv', 'bin', 'st');
const CHECKS = [
  'not_a_server_error',
  'status_code_conformance',
  'content_type_conformance',
  'response_headers_conformance',
  'response_schema_conformance',
  'negative_data_rejection',
  'missing_required_header',
  'unsupported_method',
  'ignored_auth',
  'use_after_free',
  'ensure_resource_availability',
];

let app: ApiProcess;
let tenant: TestTenant;
let deviceToken: string;
let scratch: string;
let configFile: string;
// Runs the workflows (no build queue): compilations the fuzzing creates or cancels reach an end, so their event
// streams end too instead of keeping Schemathesis waiting.
const orchestrator = new WorkerProcess({ KILN_WORKER_ROLES: 'orchestrator' });

before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'kiln-fuzz-'));
  app = await startApi({ KILN_BUILD_WAIT_FOR_WORKER_S: '5' });
  await orchestrator.start();
  tenant = await createTenant(app, 'fuzz');
  const admin = { Authorization: `Bearer ${loadKilnConfig().KILN_ADMIN_TOKEN}` };
  const device = await api(app)
    .post(`/v1/admin/tenants/${tenant.id}/keys`)
    .set(admin)
    .send({ kind: 'device', models: ['*'] })
    .expect(201);
  deviceToken = (device.body as { key: string }).key;

  const { modelId, versionId } = await uploadModel(app, tenant, 'fuzz-mlp', await fixture('mlp.pt2'));
  const compilation = await api(app)
    .post(`/v1/versions/${versionId}/compilations`)
    .set(tenant.auth)
    .send({ targets: ['linux-x86_64-v2'] })
    .expect(201);
  // Cancelled at once: a finished compilation's event stream ends after its state; a running one streams until it
  // ends (here: until no worker of linux-x86_64-v2 has polled for a while, minutes after another test's worker).
  // The orchestrator ends it: without one, a cancel is only recorded.
  const compilationId = (compilation.body as { id: string }).id;
  await api(app).post(`/v1/compilations/${compilationId}/cancel`).set(tenant.auth).expect(202);
  await waitForCompilation(app, tenant, compilationId, (c) => c.status === 'cancelled', 120_000);
  const upload = await api(app)
    .post(`/v1/models/${modelId}/uploads`)
    .set(tenant.auth)
    .send({ filename: 'fuzz.pt2', sizeBytes: 6 * 1024 * 1024 })
    .expect(201);
  await api(app).put(`/v1/models/${modelId}/channels/prod`).set(tenant.auth).send({ version: 1 }).expect(200);
  const artifacts = await api(app).get(`/v1/versions/${versionId}/artifacts`).set(tenant.auth).expect(200);

  // Real ids half of the time, generated values the other half; names of real records likewise.
  const ids = {
    models: [modelId],
    versions: [versionId],
    compilations: [compilationId],
    uploads: [(upload.body as { uploadId: string }).uploadId],
    tenants: [tenant.id],
    artifacts: (artifacts.body as { id: string }[]).map((a) => a.id),
    channels: ['prod'],
    targets: ['linux-x86_64-v2'],
  };
  const dictionaries = Object.entries(ids)
    .filter(([, values]) => values.length > 0)
    .map(([name, values]) => `[dictionaries.${name}]\nvalues = ${JSON.stringify(values)}\n`);
  const binding = (param: string, dictionary: string): string =>
    (ids as Record<string, string[]>)[dictionary].length > 0
      ? `"path.${param}" = { dictionary = "${dictionary}", probability = 0.5 }\n`
      : '';
  configFile = path.join(scratch, 'schemathesis.toml');
  await writeFile(
    configFile,
    [
      ...dictionaries,
      '[parameters]\n',
      binding('modelId', 'models'),
      binding('versionId', 'versions'),
      binding('compilationId', 'compilations'),
      binding('uploadId', 'uploads'),
      binding('tenantId', 'tenants'),
      binding('artifactId', 'artifacts'),
      binding('name', 'channels'),
      binding('targetId', 'targets'),
    ].join('\n'),
  );
});

after(async () => {
  await orchestrator.stop();
  await app?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

interface FuzzRun {
  code: number;
  output: string;
  generated: number;
}

function schemathesis(headers: Record<string, string>): Promise<FuzzRun> {
  const args = [
    '--config-file',
    configFile,
    'run',
    `${app.url}/openapi.json`,
    '--checks',
    CHECKS.join(','),
    '--phases',
    'examples,coverage,fuzzing',
    '--max-examples',
    '25',
    // One worker: CPython 3.11's ast module is not thread-safe, and Hypothesis parses lambdas with it.
    '--workers',
    '1',
    '--seed',
    '20261205',
    '--no-color',
    ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
  ];
  return new Promise((resolve) => {
    execFile(SCHEMATHESIS, args, { cwd: scratch, maxBuffer: 64 << 20, timeout: 900_000 }, (err, stdout, stderr) => {
      // A missing or broken Schemathesis shows here (scripts/setup.sh installs it into the venv).
      const output = `${stdout}${stderr}${err && !stdout && !stderr ? `${SCHEMATHESIS}: ${err.message}` : ''}`;
      const generated = Number(/(\d+) generated/.exec(output)?.[1] ?? 0);
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output, generated });
    });
  });
}

/** The failure section of Schemathesis' report (what failed, and the curl to reproduce it), for the assertion. */
function failures(output: string): string {
  const start = output.indexOf('FAILURES');
  return start >= 0 ? output.slice(start, start + 20_000) : output.slice(-20_000);
}

describe('every route, fuzzed from the OpenAPI document', () => {
  const credentials: Record<string, () => Record<string, string>> = {
    'an API key': () => tenant.auth,
    'a device token': () => ({ Authorization: `Bearer ${deviceToken}` }),
    'the admin token': () => ({ Authorization: `Bearer ${loadKilnConfig().KILN_ADMIN_TOKEN}` }),
    'no key': () => ({}),
  };
  for (const [who, headers] of Object.entries(credentials)) {
    test(`with ${who}: no 5xx, every answer as documented`, async (t) => {
      const run = await schemathesis(headers());
      assert.ok(run.generated > 0, `Schemathesis generated no test case:\n${run.output.slice(-4000)}`);
      assert.equal(run.code, 0, failures(run.output));
      t.diagnostic(`${run.generated} requests, all as documented`);
    });
  }
});
