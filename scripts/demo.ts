// The demo `npm start` runs once the stack is up: what a user does on day one, through the public HTTP API.
//   node --import @swc-node/register/esm-register scripts/demo.ts <model.pt2>
import { spawnSync } from 'node:child_process';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadKilnConfig } from '@kiln/config';

const config = loadKilnConfig();
const api = `http://127.0.0.1:${config.KILN_API_PORT}`;
const credentialsFile = path.resolve(config.KILN_HOME, 'demo-credentials.json');

async function call<T>(
  method: string,
  url: string,
  init: { key?: string; json?: unknown; body?: Buffer } = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  if (init.key) headers.Authorization = `Bearer ${init.key}`;
  if (init.json !== undefined) headers['Content-Type'] = 'application/json';
  if (init.body) headers['Content-Type'] = 'application/octet-stream';
  const res = await fetch(`${api}${url}`, {
    method,
    headers,
    body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
  });
  const text = await res.text();
  const body = text ? (JSON.parse(text) as unknown) : undefined;
  if (!res.ok) {
    const error = (body as { error?: { code: string; message: string } } | undefined)?.error;
    throw new Error(`${method} ${url} → ${res.status} ${error?.code ?? ''}: ${error?.message ?? text}`);
  }
  return body as T;
}

interface DemoCredentials {
  tenantId: string;
  key: string;
  deviceToken: string;
  /** The API's signing key, which devices are enrolled with (pinned): kiln-device trusts nothing else by default. */
  signingPublicKey?: string;
}

/**
 * The demo tenant's API key and a device token (resolve + download only), created once with the operator
 * token and kept under KILN_HOME.
 */
async function demoCredentials(): Promise<DemoCredentials> {
  try {
    const saved = JSON.parse(await readFile(credentialsFile, 'utf8')) as DemoCredentials;
    await call('GET', '/v1/models', { key: saved.key });
    if (saved.deviceToken) return { ...saved, signingPublicKey: await signingPublicKey() };
  } catch {
    // first run, or a reset database: create them below
  }
  const tenant = await call<{ id: string; apiKey: { key: string } }>('POST', '/v1/admin/tenants', {
    key: config.KILN_ADMIN_TOKEN,
    json: { name: 'demo' },
  });
  const device = await call<{ key: string }>('POST', `/v1/admin/tenants/${tenant.id}/keys`, {
    key: config.KILN_ADMIN_TOKEN,
    json: { kind: 'device', name: 'this machine', models: ['demo-mlp'] },
  });
  const credentials = {
    tenantId: tenant.id,
    key: tenant.apiKey.key,
    deviceToken: device.key,
    signingPublicKey: await signingPublicKey(),
  };
  await mkdir(path.dirname(credentialsFile), { recursive: true });
  await writeFile(credentialsFile, JSON.stringify(credentials, null, 2), { mode: 0o600 });
  console.log(`created the demo tenant; its API key and a device token are in ${credentialsFile}`);
  return credentials;
}

/** Enrollment: the operator hands each device the public key artifacts are signed with (here, its own API's). */
async function signingPublicKey(): Promise<string> {
  const keys = await call<{ publicKey: string }[]>('GET', '/v1/signing-keys', {});
  return keys[0].publicKey;
}

interface Build {
  targetId: string;
  status: string;
  phase: string | null;
  attempt: number;
  errorCode: string | null;
  errorMessage: string | null;
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: demo.ts <model.pt2>');
  const credentials = await demoCredentials();
  const key = credentials.key;

  const models = await call<{ id: string; name: string }[]>('GET', '/v1/models', { key });
  const model =
    models.find((m) => m.name === 'demo-mlp') ??
    (await call<{ id: string }>('POST', '/v1/models', {
      key,
      json: { name: 'demo-mlp', description: 'MLP, dynamic batch' },
    }));
  const bytes = await readFile(file);
  const version = await call<{ id: string; number: number; contentHash: string; summary: Record<string, unknown> }>(
    'POST',
    `/v1/models/${model.id}/versions?filename=${path.basename(file)}`,
    { key, body: bytes },
  );
  const summary = version.summary as {
    userInputs: {
      name: string;
      dtype: string;
      shape: (
        { kind: 'static'; size: number } | { kind: 'dynamic'; expr: string; min: number | null; max: number | null }
      )[];
    }[];
    parameters: { elements: number; bytes: number };
    opHistogram: Record<string, number>;
  };
  console.log(`\nuploaded ${path.basename(file)} (${bytes.length} bytes) as demo-mlp v${version.number}`);
  for (const input of summary.userInputs) {
    const dims = input.shape.map((d) =>
      d.kind === 'static' ? String(d.size) : `${d.expr}∈[${d.min ?? '?'}, ${d.max ?? '∞'}]`,
    );
    console.log(`  input ${input.name}: ${input.dtype}[${dims.join(', ')}]`);
  }
  console.log(
    `  ${summary.parameters.elements} parameters (${summary.parameters.bytes} bytes); ops: ${Object.entries(
      summary.opHistogram,
    )
      .map(([op, n]) => `${op}×${n}`)
      .join(', ')}`,
  );

  const targets = await call<{ id: string; workerOnline: boolean; crossBuiltFor?: string }[]>('GET', '/v1/targets', {
    key,
  });
  // This machine's own targets: the ones its device runtime below can run. A cross target (linux-aarch64, when the
  // worker has the toolchain of `scripts/setup.sh --cross`) is served too, for devices of another kind.
  const local = targets.filter((t) => t.workerOnline && !t.crossBuiltFor).map((t) => t.id);
  const cross = targets.filter((t) => t.workerOnline && t.crossBuiltFor).map((t) => t.id);
  if (local.length === 0) throw new Error('No build worker is online (see .kiln/logs/worker.log).');
  if (cross.length > 0) {
    console.log(`(the worker also cross-builds ${cross.join(', ')}: compile for it by name, e.g. in the dashboard)`);
  }
  console.log(`\ncompiling for the targets this machine's worker builds: ${local.join(', ')}`);
  const started = Date.now();
  let compilation = await call<{ id: string; status: string; builds: Build[] }>(
    'POST',
    `/v1/versions/${version.id}/compilations`,
    { key, json: { targets: local } },
  );
  const seen = new Map<string, string>();
  for (;;) {
    for (const b of compilation.builds) {
      const line = `${b.status}${b.phase && b.status === 'running' ? ` (${b.phase})` : ''}${b.errorCode ? ` ${b.errorCode}: ${b.errorMessage}` : ''}`;
      if (seen.get(b.targetId) !== line) {
        seen.set(b.targetId, line);
        console.log(`  [${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${b.targetId.padEnd(18)} ${line}`);
      }
    }
    if (['succeeded', 'partial', 'failed', 'cancelled'].includes(compilation.status)) break;
    await sleep(1000);
    compilation = await call('GET', `/v1/compilations/${compilation.id}`, { key });
  }
  console.log(`compilation ${compilation.status} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);

  const artifacts = await call<
    {
      targetId: string;
      sizeBytes: number;
      verification: { maxAbsError: number; passed: boolean };
      timing: { eagerMs: number; compiledMs: number; speedup: number };
      isaCheck: { counts: Record<string, number> };
    }[]
  >('GET', `/v1/versions/${version.id}/artifacts`, { key });
  console.log('target              size      max|err|   eager ms  compiled ms  speedup  zmm/ymm');
  for (const a of artifacts) {
    console.log(
      `${a.targetId.padEnd(18)} ${(a.sizeBytes / 1024).toFixed(0).padStart(6)} KiB  ${a.verification.maxAbsError.toExponential(1).padStart(8)}  ${a.timing.eagerMs.toFixed(3).padStart(9)}  ${a.timing.compiledMs.toFixed(3).padStart(11)}  ${a.timing.speedup.toFixed(2).padStart(6)}x  ${a.isaCheck.counts.zmm ?? 0}/${a.isaCheck.counts.ymm ?? 0}`,
    );
  }
  if (compilation.status !== 'succeeded') {
    process.exitCode = 1;
    return;
  }

  // The fleet side: this machine as a device. The runtime probes the host, asks the resolver, explains the
  // choice, downloads and verifies (sha256 + ed25519 signature) the parts, loads the artifact, runs it next
  // to the portable graph on the same inputs and prints the error and the speedup.
  await call('PUT', `/v1/models/${model.id}/channels/prod`, { key, json: { versionId: version.id } });
  console.log(`\nmoved channel prod → v${version.number}; now this machine runs demo-mlp@prod as a device:\n`);
  const device = spawnSync(
    path.resolve(path.dirname(config.KILN_PYTHON), 'kiln-device'),
    ['run', 'demo-mlp@prod', '--runs', '50'],
    {
      stdio: 'inherit',
      // This machine's device state (downloads, device id, queued reports) belongs to this local Kiln: another clone
      // or a reset stack has another signing key and other records. The device is enrolled with this API's key.
      env: {
        ...process.env,
        KILN_API_URL: api,
        KILN_DEVICE_TOKEN: credentials.deviceToken,
        KILN_SIGNING_PUBLIC_KEY: credentials.signingPublicKey ?? '',
        KILN_CACHE_DIR: path.resolve(config.KILN_HOME, 'device-cache'),
      },
    },
  );
  if (device.status !== 0) {
    console.error(`kiln-device run failed (exit ${device.status ?? device.signal})`);
    process.exitCode = 1;
  }
  console.log(
    `\nAPI: ${api} (OpenAPI: ${api}/docs) · Temporal UI: http://127.0.0.1:${process.env.TEMPORAL_UI_PORT ?? 8233} · stop: npm stop`,
  );
}

await main();
