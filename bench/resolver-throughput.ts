// Resolver throughput and latency vs a bare Node http server returning a JSON body of the same size, on the
// same machine in the same run (autocannon, 64 and 256 concurrent connections).
//   node --import @swc-node/register/esm-register bench/resolver-throughput.ts [--duration 10]
// Needs the local stack (PostgreSQL, Temporal, S3): scripts/stack.sh start. Starts its own API process (compiled,
// as npm start runs it) on a spare port, seeds a tenant with one model version and its three real x86 artifact
// manifests (signed with the local key), then loads POST /v1/resolve with a device token and an AVX-512 fingerprint.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import type { ArtifactManifest } from '@kiln/contracts';
import { kilnDataSourceOptions } from '@kiln/database';
import { AVX512_SERVER_FINGERPRINT } from '@kiln/matching';
import { ArtifactSigner } from '@kiln/signing';
import { REPO_ROOT } from '../test/support/kiln-harness.js';
import { APP_NODE_FLAGS, buildDist, distEntry } from '../scripts/lib/build-dist.js';

const config = loadKilnConfig();
const duration = Number(process.argv[process.argv.indexOf('--duration') + 1]) || 10;
const API_PORT = 3901;
const BARE_PORT = 3902;

function startProcess(args: string[], env: Record<string, string>, ready: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (ready.test(output)) resolve(child);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}:\n${output}`)));
  });
}

async function http<T>(method: string, url: string, token: string, body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function seed(api: string): Promise<{ deviceToken: string; request: string; bodyBytes: number; chosen: string }> {
  const admin = config.KILN_ADMIN_TOKEN;
  const tenant = await http<{ id: string; apiKey: { key: string } }>('POST', `${api}/v1/admin/tenants`, admin, {
    name: 'bench-resolver',
  });
  const device = await http<{ key: string }>('POST', `${api}/v1/admin/tenants/${tenant.id}/keys`, admin, {
    kind: 'device',
    models: ['bench-mlp'],
  });
  // One token stands for a whole fleet here, far above any real per-key limit: the bench measures what the
  // rate limiter costs on the hot path (a lease from PostgreSQL now and then), not its refusals.
  await http('PATCH', `${api}/v1/admin/tenants/${tenant.id}/quotas`, admin, { rateLimitPerMinute: 100_000_000 });
  const key = tenant.apiKey.key;
  const model = await http<{ id: string }>('POST', `${api}/v1/models`, key, { name: 'bench-mlp' });
  const pt2 = await readFile(path.join(REPO_ROOT, '.kiln/fixtures/mlp.pt2'));
  const uploaded = await fetch(`${api}/v1/models/${model.id}/versions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/octet-stream' },
    body: pt2,
  });
  const version = (await uploaded.json()) as { contentHash: string };

  // Three real manifests (test/fixtures/manifests/cpu), re-keyed to this tenant and signed like a worker does.
  const signer = await ArtifactSigner.fromFile(path.resolve(REPO_ROOT, config.KILN_SIGNING_KEY_FILE), true);
  const db = new DataSource(kilnDataSourceOptions(config.DATABASE_URL, { logging: false }));
  await db.initialize();
  for (const target of ['linux-x86_64-v2', 'linux-x86_64-v3', 'linux-x86_64-v4']) {
    const manifest = JSON.parse(
      await readFile(path.join(REPO_ROOT, 'test/fixtures/manifests/cpu', `${target}.json`), 'utf8'),
    ) as ArtifactManifest;
    const cacheKey = createHash('sha256').update(`${tenant.id}/${target}`).digest('hex');
    const bytes = Buffer.from(
      JSON.stringify({ ...manifest, cacheKey, modelContentHash: version.contentHash }, null, 2),
    );
    const { signature, keyId } = signer.sign(bytes);
    await db.query(
      `INSERT INTO artifacts (tenant_id, cache_key, model_content_hash, target_id, recipe_hash, manifest_key, manifest,
                              size_bytes, manifest_sha256, signature, signing_key_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [
        tenant.id,
        cacheKey,
        version.contentHash,
        target,
        manifest.recipeHash,
        `tenants/${tenant.id}/manifests/${cacheKey}.json`,
        bytes.toString(),
        1000,
        createHash('sha256').update(bytes).digest('hex'),
        signature,
        keyId,
      ],
    );
  }
  await db.destroy();

  const fingerprint = AVX512_SERVER_FINGERPRINT;
  const request = JSON.stringify({ model: 'bench-mlp', fingerprint });
  const res = await fetch(`${api}/v1/resolve`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${device.key}`, 'Content-Type': 'application/json' },
    body: request,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`resolve: ${res.status} ${text}`);
  return {
    deviceToken: device.key,
    request,
    bodyBytes: Buffer.byteLength(text),
    chosen: (JSON.parse(text) as { artifact: { targetId: string } | null }).artifact?.targetId ?? 'portable',
  };
}

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function load(url: string, connections: number, headers: Record<string, string>, body?: string): Promise<Result> {
  const r = await autocannon({
    url,
    connections,
    duration,
    method: body ? 'POST' : 'GET',
    headers,
    body,
    pipelining: 1,
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
}

async function main(): Promise<void> {
  // The API as `npm start` runs it: compiled into dist/, with the flags of scripts/stack.sh.
  await buildDist();
  const api = await startProcess(
    [...APP_NODE_FLAGS, distEntry('api')],
    { KILN_API_PORT: String(API_PORT), KILN_LOCAL_MODE: 'true' },
    /API listening/,
  );
  let bare: ChildProcess | undefined;
  try {
    const base = `http://127.0.0.1:${API_PORT}`;
    const seeded = await seed(base);
    bare = await startProcess(
      [
        '--import',
        '@swc-node/register/esm-register',
        'bench/bare-json-server.ts',
        String(BARE_PORT),
        String(seeded.bodyBytes),
      ],
      {},
      /listening/,
    );
    console.log(
      `resolve answer: ${seeded.bodyBytes} bytes (chosen: ${seeded.chosen}); ${duration} s per run; machine: ${(await readFile('/proc/cpuinfo', 'utf8')).match(/model name\s*:\s*(.*)/)?.[1]} x${(await readFile('/proc/cpuinfo', 'utf8')).match(/^processor/gm)?.length}`,
    );
    const headers = { Authorization: `Bearer ${seeded.deviceToken}`, 'Content-Type': 'application/json' };
    await load(`${base}/v1/resolve`, 16, headers, seeded.request); // warm-up (JIT, pools)
    console.log('conn  server     req/s    p50 ms  p99 ms  errors  ratio');
    for (const connections of [64, 256]) {
      const bareResult = await load(`http://127.0.0.1:${BARE_PORT}/`, connections, headers, seeded.request);
      await sleep(1000);
      const kiln = await load(`${base}/v1/resolve`, connections, headers, seeded.request);
      const row = (name: string, r: Result, ratio: string): void =>
        console.log(
          `${String(connections).padEnd(5)} ${name.padEnd(9)} ${r.rps.toFixed(0).padStart(7)}  ${r.p50.toFixed(1).padStart(6)}  ${r.p99.toFixed(1).padStart(6)}  ${String(r.errors + r.non2xx).padStart(6)}  ${ratio}`,
        );
      row('bare', bareResult, '');
      row('resolver', kiln, (kiln.rps / bareResult.rps).toFixed(2));
    }
  } finally {
    bare?.kill();
    api.kill('SIGTERM');
  }
}

await main();
