// Conformance with torch's own export examples (ExportDB), through the real stack:
//   node --import @swc-node/register/esm-register bench/exportdb.ts [--only a,b] [--concurrency 2] [--no-repro]
// 1. starts the stack as `npm start` does (scripts/stack.sh start all: the API and a build worker compiled from
//    dist/), creates a fresh tenant and reads the targets this machine's worker serves (GET /v1/targets,
//    `workerOnline`);
// 2. bench/exportdb.py exports every example of torch._export.db.examples.all_examples() the installed torch
//    can export, with the example's own inputs and dynamic shapes (the others are listed with torch's reason);
// 3. uploads each .pt2 through the API and compiles it for those targets, a few compilations at a time;
// 4. for every failed build, reproduces outside Kiln with plain AOTInductor (bench/exportdb.py plain: torch's
//    default options; when that works, the target recipe's options) and classifies the failure as upstream
//    (plain AOTInductor fails too) or a Kiln defect;
// 5. prints a table (example, target, outcome, error code, speedup, max error, classification) and writes it,
//    with every message, to .kiln/bench/exportdb-<time>/results.json. Results: bench/README.md ("ExportDB conformance").
// The stack keeps running afterwards, as after `npm start` (`npm stop` stops it).
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { loadKilnConfig } from '@kiln/config';
import { findTarget } from '@kiln/targets';

const run = promisify(execFile);
const REPO_ROOT = path.resolve(import.meta.dirname, '..');
// The same settings the services get: the environment first, then the repo's .env (ports of this checkout's stack).
if (existsSync(path.join(REPO_ROOT, '.env'))) process.loadEnvFile(path.join(REPO_ROOT, '.env'));
const config = loadKilnConfig();
const API = `http://127.0.0.1:${config.KILN_API_PORT}`;
const PYTHON = path.resolve(REPO_ROOT, config.KILN_PYTHON);
const HELPER = path.join(REPO_ROOT, 'bench', 'exportdb.py');

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    concurrency: { type: 'string', default: '2' },
    'no-repro': { type: 'boolean', default: false },
  },
});

interface ExportEntry {
  name: string;
  tags: string[];
  supportLevel: string;
  exported: boolean;
  file?: string;
  reason?: string;
}

interface Build {
  targetId: string;
  status: string;
  errorCode: string | null;
  errorMessage: string | null;
  artifact: { id: string } | null;
}

interface Artifact {
  targetId: string;
  verification: { maxAbsError: number; passed: boolean };
  timing: { speedup: number };
}

interface PlainOutcome {
  ok: boolean;
  stage: 'compile' | 'load' | 'run' | 'compare' | 'done';
  error: string | null;
  maxAbsError: number | null;
}

interface Row {
  example: string;
  target: string;
  outcome: string;
  code: string | null;
  message: string | null;
  speedup: number | null;
  maxAbsError: number | null;
  classification: string;
  plain?: { defaults: PlainOutcome; recipe?: PlainOutcome };
}

async function call<T>(method: string, url: string, init: { key?: string; json?: unknown; body?: Buffer } = {}) {
  const headers: Record<string, string> = {};
  if (init.key) headers.Authorization = `Bearer ${init.key}`;
  if (init.json !== undefined) headers['Content-Type'] = 'application/json';
  if (init.body) headers['Content-Type'] = 'application/octet-stream';
  const res = await fetch(`${API}${url}`, {
    method,
    headers,
    body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
  });
  const text = await res.text();
  const body = text ? (JSON.parse(text) as unknown) : undefined;
  if (!res.ok) {
    const error = (body as { error?: { code: string; message: string } } | undefined)?.error;
    throw Object.assign(new Error(`${method} ${url} → ${res.status} ${error?.code ?? ''}: ${error?.message ?? text}`), {
      code: error?.code,
      apiMessage: error?.message,
    });
  }
  return body as T;
}

/** Runs `fn` over `items`, at most `limit` at a time, keeping the order of the results. */
async function pool<I, O>(items: I[], limit: number, fn: (item: I) => Promise<O>): Promise<O[]> {
  const out: O[] = new Array<O>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  });
  await Promise.all(lanes);
  return out;
}

async function python(argv: string[], env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await run(PYTHON, [HELPER, ...argv], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    maxBuffer: 1 << 26,
  });
  return stdout;
}

/** The same .pt2 through plain AOTInductor, outside Kiln, in a fresh TMPDIR and inductor cache. */
async function plain(example: string, file: string, target: string, configs?: Record<string, unknown>) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-exportdb-'));
  try {
    const tolerance = findTarget(target)!.recipe.tolerance;
    const argv = ['plain', example, file, path.join(dir, 'out'), '--atol', String(tolerance.atol)];
    argv.push('--rtol', String(tolerance.rtol), ...(configs ? ['--configs', JSON.stringify(configs)] : []));
    const stdout = await python(argv, { TMPDIR: dir, TORCHINDUCTOR_CACHE_DIR: path.join(dir, 'cache') });
    return JSON.parse(stdout.trim().split('\n').pop()!) as PlainOutcome;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function describePlain(p: PlainOutcome): string {
  return `${p.stage}: ${p.error ?? ''}`.slice(0, 300);
}

async function classify(row: Row, file: string, defaults: () => Promise<PlainOutcome>): Promise<void> {
  const first = await defaults();
  row.plain = { defaults: first };
  if (!first.ok) {
    row.classification = `upstream (reproduced by plain AOTInductor: ${describePlain(first)})`;
    return;
  }
  // torch's defaults work: is it the recipe's options (still upstream code, but Kiln chose them)?
  const recipe = findTarget(row.target)!.recipe.inductorConfigs;
  const withRecipe = await plain(row.example, file, row.target, recipe);
  row.plain.recipe = withRecipe;
  row.classification = withRecipe.ok
    ? 'Kiln defect (plain AOTInductor builds, loads and matches, with its defaults and with the recipe options)'
    : `Kiln defect (plain AOTInductor fails only with the recipe's options: ${describePlain(withRecipe)})`;
}

function fmt(n: number | null, digits: number, exp = false): string {
  if (n === null) return '';
  return exp ? n.toExponential(digits) : n.toFixed(digits);
}

async function main(): Promise<void> {
  const stack = spawnSync('bash', [path.join(REPO_ROOT, 'scripts/stack.sh'), 'start', 'all'], { stdio: 'inherit' });
  if (stack.status !== 0) throw new Error(`scripts/stack.sh start all failed (exit ${stack.status})`);

  const tenant = await call<{ id: string; apiKey: { key: string } }>('POST', '/v1/admin/tenants', {
    key: config.KILN_ADMIN_TOKEN,
    json: { name: `exportdb-${Date.now()}` },
  });
  const key = tenant.apiKey.key;
  let targets: string[] = [];
  for (let i = 0; i < 60 && targets.length === 0; i++) {
    const all = await call<{ id: string; workerOnline: boolean }[]>('GET', '/v1/targets', { key });
    targets = all.filter((t) => t.workerOnline).map((t) => t.id);
    if (targets.length === 0) await sleep(1000);
  }
  if (targets.length === 0) throw new Error('no build worker is online (see .kiln/logs/worker.log)');

  const cpu = (await readFile('/proc/cpuinfo', 'utf8')).match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown CPU';
  const flags = (await readFile('/proc/cpuinfo', 'utf8')).match(/flags\s*:\s*(.*)/)?.[1]?.split(' ') ?? [];
  const vector = flags.includes('avx512f') ? 'AVX-512' : flags.includes('avx2') ? 'AVX2' : 'no AVX2';
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const work = path.join(REPO_ROOT, config.KILN_HOME, 'bench', `exportdb-${stamp}`);
  await mkdir(work, { recursive: true });

  await python(['export', path.join(work, 'models')]);
  const index = JSON.parse(await readFile(path.join(work, 'models', 'index.json'), 'utf8')) as {
    torch: string;
    examples: ExportEntry[];
  };
  const only = args.only ? new Set(args.only.split(',')) : null;
  const examples = index.examples.filter((e) => !only || only.has(e.name));
  const exported = examples.filter((e) => e.exported);
  console.log(
    `\n${cpu} (${vector}, ${os.cpus().length} CPUs), torch ${index.torch}; worker serves ${targets.join(', ')}; ` +
      `${exported.length} of ${examples.length} ExportDB examples exported`,
  );

  const started = Date.now();
  const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(0).padStart(5)}s`;
  const perExample = await pool(exported, Number(args.concurrency), async (example): Promise<Row[]> => {
    const rowsFor = (outcome: string, code: string | null, message: string | null): Row[] =>
      targets.map((target) => ({
        example: example.name,
        target,
        outcome,
        code,
        message,
        speedup: null,
        maxAbsError: null,
        classification: '',
      }));
    const model = await call<{ id: string }>('POST', '/v1/models', { key, json: { name: `exportdb-${example.name}` } });
    let versionId: string;
    try {
      const version = await call<{ id: string }>(
        'POST',
        `/v1/models/${model.id}/versions?filename=${example.name}.pt2`,
        {
          key,
          body: await readFile(example.file!),
        },
      );
      versionId = version.id;
    } catch (err) {
      const e = err as { code?: string; apiMessage?: string; message: string };
      console.log(`[${elapsed()}] ${example.name}: upload refused: ${e.message}`);
      return rowsFor('upload refused', e.code ?? null, e.apiMessage ?? e.message);
    }
    let compilation = await call<{ id: string; status: string; builds: Build[] }>(
      'POST',
      `/v1/versions/${versionId}/compilations`,
      { key, json: { targets } },
    );
    const deadline = Date.now() + 60 * 60_000;
    while (!['succeeded', 'partial', 'failed', 'cancelled'].includes(compilation.status)) {
      if (Date.now() > deadline) throw new Error(`${example.name}: compilation not done after an hour`);
      await sleep(2000);
      compilation = await call('GET', `/v1/compilations/${compilation.id}`, { key });
    }
    const artifacts = await call<Artifact[]>('GET', `/v1/versions/${versionId}/artifacts`, { key });
    const rows = compilation.builds.map((b): Row => {
      const artifact = artifacts.find((a) => a.targetId === b.targetId);
      return {
        example: example.name,
        target: b.targetId,
        outcome: b.status,
        code: b.errorCode,
        message: b.errorMessage,
        speedup: artifact?.timing.speedup ?? null,
        maxAbsError: artifact?.verification.maxAbsError ?? null,
        classification: b.status === 'succeeded' ? 'pass' : '',
      };
    });
    console.log(
      `[${elapsed()}] ${example.name}: ` +
        rows.map((r) => `${r.target} ${r.outcome}${r.code ? ` ${r.code}: ${r.message}` : ''}`).join('; '),
    );
    return rows;
  });
  const rows = perExample.flat().sort((a, b) => a.example.localeCompare(b.example) || a.target.localeCompare(b.target));

  if (!args['no-repro']) {
    // One plain compile with torch's defaults per example serves all its failed targets.
    const defaults = new Map<string, Promise<PlainOutcome>>();
    for (const row of rows.filter((r) => r.outcome === 'failed' || r.outcome === 'upload refused')) {
      const file = exported.find((e) => e.name === row.example)!.file!;
      console.log(`[${elapsed()}] reproducing ${row.example} (${row.target}) with plain AOTInductor ...`);
      await classify(row, file, () => {
        if (!defaults.has(row.example)) defaults.set(row.example, plain(row.example, file, row.target));
        return defaults.get(row.example)!;
      });
    }
  }

  const table = [
    '| example | target | outcome | error code | speedup | max abs error | classification |',
    '|---|---|---|---|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.example} | ${r.target} | ${r.outcome} | ${r.code ?? ''} | ${fmt(r.speedup, 2)} | ` +
        `${fmt(r.maxAbsError, 1, true)} | ${r.classification} |`,
    ),
  ];
  console.log(`\n${table.join('\n')}\n`);
  const skipped = examples.filter((e) => !e.exported);
  if (skipped.length) {
    console.log('not exported by this torch (export skips):');
    for (const e of skipped) console.log(`  ${e.name} (${e.supportLevel}): ${e.reason}`);
  }
  const failures = rows.filter((r) => r.classification !== 'pass');
  if (failures.length) {
    console.log('\nfailures:');
    for (const r of failures)
      console.log(`  ${r.example} ${r.target}: ${r.code}: ${r.message}\n    → ${r.classification}`);
  }
  const passed = rows.filter((r) => r.classification === 'pass');
  const speedups = passed.map((r) => r.speedup!).sort((a, b) => a - b);
  const errors = passed.map((r) => r.maxAbsError!);
  console.log(
    `\n${passed.length}/${rows.length} builds passed (${exported.length} examples × ${targets.length} targets) in ` +
      `${((Date.now() - started) / 60_000).toFixed(0)} min; speedups ${fmt(speedups[0] ?? null, 2)}–` +
      `${fmt(speedups.at(-1) ?? null, 2)}x (median ${fmt(speedups[Math.floor(speedups.length / 2)] ?? null, 2)}x), ` +
      `max abs error ≤ ${fmt(errors.length ? Math.max(...errors) : null, 1, true)}; ` +
      `${failures.filter((r) => r.classification.startsWith('upstream')).length} upstream failures, ` +
      `${failures.filter((r) => r.classification.startsWith('Kiln defect')).length} Kiln defects`,
  );
  const out = path.join(work, 'results.json');
  await writeFile(
    out,
    JSON.stringify(
      { date: new Date().toISOString(), cpu, vector, torch: index.torch, targets, skipped, rows },
      null,
      2,
    ),
  );
  console.log(`results: ${out}`);
  if (failures.some((r) => !r.classification.startsWith('upstream'))) process.exitCode = 1;
}

await main();
