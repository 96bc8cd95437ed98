// Kiln's overhead on top of a plain local AOTInductor compile, measured in one run on one machine:
//   node --import @swc-node/register/esm-register bench/compile-overhead.ts [model.pt2]
// The targets are the x86 targets the local worker serves (GET /v1/targets, workerOnline): one target is the most
// specific of them (v4 on an AVX-512 host, v3 on an AVX2 host), "all" is every served x86 target.
// 1. baseline: bench/direct_compile.py (interpreter + torch import + load + aoti_compile_and_package, same recipe)
// 2. Kiln, one target: upload + compile through the API, Temporal and a build worker until `succeeded`
//    (includes what Kiln adds on purpose: sandbox, ISA check, fresh-process verification and timing, upload)
// 3. an identical resubmit (answered from the cache)
// 4. Kiln, all served x86 targets at once vs one
// 5. steps 1-2 in rounds (KILN_BENCH_ROUNDS, default 3), each Kiln run against the direct compiles around it, to
//    bracket machine noise; the median round is the ratio. Prints ratios; numbers go to bench/README.md.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadKilnConfig } from '@kiln/config';
import { findTarget } from '@kiln/targets';
import {
  api,
  createTenant,
  FIXTURES_DIR,
  onlineTargets,
  REPO_ROOT,
  startApi,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
  X86_TARGETS,
} from '../test/support/kiln-harness.js';

const run = promisify(execFile);
const modelPath = process.argv[2] ?? path.join(FIXTURES_DIR, 'mlp.pt2');
// Rounds of (direct compile, Kiln one target); KILN_BENCH_ROUNDS, default 3.
const rounds = Math.max(1, Number(process.env.KILN_BENCH_ROUNDS) || 3);
const python = path.resolve(REPO_ROOT, loadKilnConfig().KILN_PYTHON);

async function direct(target: string): Promise<{ wallSeconds: number; compileSeconds: number }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-'));
  try {
    const recipeFile = path.join(dir, 'recipe.json');
    await writeFile(recipeFile, JSON.stringify(findTarget(target)!.recipe));
    // A fresh inductor cache each time, as Kiln's sandboxed jobs have.
    const env = { ...process.env, TORCHINDUCTOR_CACHE_DIR: path.join(dir, 'cache'), TMPDIR: dir };
    const { stdout } = await run(
      python,
      [path.join(REPO_ROOT, 'bench/direct_compile.py'), modelPath, recipeFile, dir],
      {
        env,
        maxBuffer: 1 << 24,
      },
    );
    return JSON.parse(stdout.trim().split('\n').pop()!) as { wallSeconds: number; compileSeconds: number };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const app = await startApi();
  const worker = new WorkerProcess();
  await worker.start();
  const online = await onlineTargets(app, await createTenant(app, 'bench-targets'));
  const served = X86_TARGETS.filter((t) => online.includes(t));
  if (served.length === 0) throw new Error(`the local worker serves no x86 target:\n${worker.output}`);
  const target = served[served.length - 1];
  const file = await readFile(modelPath);
  const seconds = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

  const kilnCompile = async (targets: string[]): Promise<{ wall: number; artifacts: number }> => {
    // A fresh tenant: the cache is per tenant, so this really compiles.
    const tenant = await createTenant(app, 'bench');
    const t0 = process.hrtime.bigint();
    const { versionId } = await uploadModel(app, tenant, 'bench-model', file);
    const res = await api(app)
      .post(`/v1/versions/${versionId}/compilations`)
      .set(tenant.auth)
      .send({ targets })
      .expect(201);
    const id = (res.body as { id: string }).id;
    const done = await waitForCompilation(app, tenant, id);
    const wall = seconds(t0);
    if (done.status !== 'succeeded') throw new Error(`compilation ${done.status}: ${JSON.stringify(done.builds)}`);
    const artifacts = await api(app).get(`/v1/versions/${versionId}/artifacts`).set(tenant.auth).expect(200);
    const t1 = process.hrtime.bigint();
    const again = await api(app)
      .post(`/v1/versions/${versionId}/compilations`)
      .set(tenant.auth)
      .send({ targets })
      .expect(201);
    const resubmit = seconds(t1);
    if ((again.body as { status: string }).status !== 'succeeded') throw new Error('resubmit was not a cache hit');
    resubmitSeconds.push(resubmit);
    return {
      wall,
      artifacts: (artifacts.body as unknown[]).length,
    };
  };
  const resubmitSeconds: number[] = [];

  try {
    console.log(
      `model ${modelPath}; the local worker serves ${served.join(', ')}: one target = ${target}; machine: ${(await readFile('/proc/cpuinfo', 'utf8')).match(/model name\s*:\s*(.*)/)?.[1]}`,
    );
    // Rounds of (direct, Kiln one target), then a closing direct compile: each Kiln run is set against the mean of
    // the direct compiles just before and after it, so a machine that gets busier or quieter mid-run shows as spread
    // between rounds, not as overhead. The median round is the figure.
    const directs = [await direct(target)];
    const report = (d: { wallSeconds: number; compileSeconds: number }) =>
      `wall ${d.wallSeconds.toFixed(1)} s (aoti_compile_and_package ${d.compileSeconds.toFixed(1)} s)`;
    console.log(`baseline direct compile #1: ${report(directs[0])}`);
    const ones: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const one = await kilnCompile([target]);
      ones.push(one.wall);
      console.log(
        `Kiln, one target (round ${round}): wall ${one.wall.toFixed(1)} s (upload → verified artifact stored)`,
      );
      directs.push(await direct(target));
      console.log(`baseline direct compile #${round + 1}: ${report(directs[round])}`);
    }
    const all = await kilnCompile(served);
    console.log(`Kiln, ${served.length} targets:              wall ${all.wall.toFixed(1)} s`);
    const ratios = ones.map((wall, i) => wall / ((directs[i].wallSeconds + directs[i + 1].wallSeconds) / 2));
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log('\nratios (same machine, same run):');
    console.log(
      `  Kiln one target / direct compile:   ${median(ratios).toFixed(2)} (median of ${ratios.length} rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})`,
    );
    const one = { wall: median(ones) };
    console.log(`  Kiln ${served.length} targets / one target:       ${(all.wall / one.wall).toFixed(2)}`);
    console.log(
      `  identical resubmit:                 ${(Math.max(...resubmitSeconds) * 1000).toFixed(0)} ms (worst of ${resubmitSeconds.length})`,
    );
  } finally {
    await worker.stop();
    await app.close();
  }
}

await main();
