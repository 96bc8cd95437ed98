// Is the build host's timing repeatable? The same artifact of the same model, timed in separate fresh processes with
// the compile driver's own method (python/driver/kiln_driver/timing.py: warm-up until stable, interleaved ABBA pairs
// per input size, medians with 95 % intervals, the CPU-pressure noise guard), must agree within 10 % on an idle host.
//   node --import @swc-node/register/esm-register bench/timing-stability.ts [--models mlp,cnn] [--repeats 3]
// Compiles each fixture once for linux-x86_64-v2 (any x86-64 host from v2 up builds and runs it) with
// `python -m kiln_driver build --work-dir`, then re-runs the build's own verification request (`verify`, a fresh
// process each time: load, compare, time) `repeats` times. Prints each figure, its interval, what the noise guard
// saw, and the spread; numbers go to bench/README.md. No stack needed.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadKilnConfig } from '@kiln/config';
import type { TimingResult } from '@kiln/contracts';
import { findTarget, recipeHash } from '@kiln/targets';
import { FIXTURES_DIR, REPO_ROOT } from '../test/support/kiln-harness.js';

const run = promisify(execFile);
const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const models = arg('models', 'mlp,cnn').split(',');
const repeats = Number(arg('repeats', '3'));
const python = path.resolve(REPO_ROOT, loadKilnConfig().KILN_PYTHON);
const TARGET = 'linux-x86_64-v2';

async function pressure(): Promise<string> {
  try {
    return (await readFile('/proc/pressure/cpu', 'utf8')).split('\n')[0];
  } catch {
    return 'no PSI';
  }
}

async function build(model: string, dir: string): Promise<{ request: string; timing: TimingResult }> {
  const target = findTarget(TARGET)!;
  const job = {
    targetId: target.id,
    recipe: target.recipe,
    recipeHash: recipeHash(target.recipe),
    modelContentHash: 'bench',
    cacheKey: 'bench',
    requires: target.requires,
    host: { cpuModel: cpus()[0]?.model ?? 'unknown', x86Level: null, gpuName: null, driverVersion: null },
    sandbox: {},
    timing: { warmup: 3, runs: 20 },
    seed: 0,
  };
  await writeFile(path.join(dir, 'job.json'), JSON.stringify(job));
  await run(
    python,
    [
      '-m',
      'kiln_driver',
      'build',
      '--model',
      path.join(FIXTURES_DIR, `${model}.pt2`),
      '--job',
      path.join(dir, 'job.json'),
      '--out',
      path.join(dir, 'out'),
      '--work-dir',
      path.join(dir, 'work'),
    ],
    { env: { ...process.env, TORCHINDUCTOR_CACHE_DIR: path.join(dir, 'cache') }, maxBuffer: 64 << 20 },
  );
  const manifest = JSON.parse(await readFile(path.join(dir, 'out', 'manifest.json'), 'utf8')) as {
    timing: TimingResult;
  };
  return { request: path.join(dir, 'work', 'verify-request.json'), timing: manifest.timing };
}

async function retime(request: string): Promise<TimingResult> {
  const { stdout } = await run(python, ['-m', 'kiln_driver', 'verify', '--request', request], {
    maxBuffer: 64 << 20,
  });
  const result = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string; ok?: boolean; timing?: TimingResult; error?: unknown })
    .find((e) => e.event === 'result');
  if (!result?.ok || !result.timing) throw new Error(`verify failed: ${JSON.stringify(result?.error)}`);
  return result.timing;
}

function line(label: string, t: TimingResult): string {
  const ci = t.speedupCi ? `[${t.speedupCi.join(', ')}]` : '';
  const noise = t.noise
    ? `pressure ${t.noise.cpuPressure ?? 'n/a'}, load/cpu ${t.noise.loadPerCpu ?? 'n/a'}, attempts ${t.noise.attempts}`
    : '';
  return `${label.padEnd(10)} ${t.speedup.toFixed(3)}x ${ci.padEnd(18)} eager ${t.eagerMs} ms, compiled ${t.compiledMs} ms, ${t.runs} pairs, ${t.uncertain ? 'UNCERTAIN' : 'certain'}; ${noise}`;
}

console.log(
  `machine: ${cpus()[0]?.model} x${cpus().length}; load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
console.log(`cpu pressure before: ${await pressure()}`);
for (const model of models) {
  const dir = await mkdtemp(path.join(tmpdir(), 'kiln-timing-'));
  try {
    const built = await build(model, dir);
    const figures = [built.timing];
    console.log(`\n${model} (${TARGET}):`);
    console.log(line('build', built.timing));
    for (let i = 1; i <= repeats; i++) {
      const t = await retime(built.request);
      figures.push(t);
      console.log(line(`re-time ${i}`, t));
    }
    const speedups = figures.map((t) => t.speedup);
    const lo = Math.min(...speedups);
    const hi = Math.max(...speedups);
    const spread = (hi - lo) / ((hi + lo) / 2);
    const certain = figures.filter((t) => !t.uncertain).map((t) => t.speedup);
    const certainSpread =
      certain.length > 1
        ? (Math.max(...certain) - Math.min(...certain)) / ((Math.max(...certain) + Math.min(...certain)) / 2)
        : NaN;
    console.log(
      `${model}: speedups ${speedups.map((s) => s.toFixed(3)).join(', ')} → spread ${(spread * 100).toFixed(1)} % ` +
        `(${spread <= 0.1 ? 'within' : 'NOT within'} 10 %); among the figures not marked uncertain: ` +
        `${Number.isNaN(certainSpread) ? 'fewer than two' : `${(certainSpread * 100).toFixed(1)} %`}`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
console.log(
  `\ncpu pressure after: ${await pressure()}; load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
