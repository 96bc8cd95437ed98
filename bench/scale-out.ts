// Build throughput with 1, 2 and 3 build workers on this machine, in one run:
//   node --import @swc-node/register/esm-register bench/scale-out.ts [model.pt2]
// One API and one orchestrator-only worker throughout; for each worker count, that many build-only workers, each
// with its own KILN_HOME and KILN_WORKER_ID (as if on separate hosts, as test/scale-out.e2e-spec.ts runs them) and
// one build at a time. Six compilations of linux-x86_64-v2 (every x86-64 host builds it), each in a fresh tenant so
// that each has its own cache key (no cache hits), are submitted at once; the wall time runs from the first submit to
// the last `succeeded`. Prints wall time, builds/minute, how busy the machine's CPUs were meanwhile (/proc/stat, every
// process, ours or not) and the ratio to one worker. Numbers go to bench/README.md.
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import { kilnDataSourceOptions } from '@kiln/database';
import {
  api,
  createTenant,
  FIXTURES_DIR,
  REPO_ROOT,
  startApi,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
  type ApiProcess,
} from '../test/support/kiln-harness.js';

const TARGET = 'linux-x86_64-v2';
const BUILDS = 6;
// One worker again at the end brackets the machine's noise (it is shared): ratios are against the mean of both.
const WORKER_COUNTS = [1, 2, 3, 1];
const modelPath = process.argv[2] ?? path.join(FIXTURES_DIR, 'mlp.pt2');
// Never under /tmp: the sandbox gives jobs a private /tmp.
const HOSTS_DIR = path.join(REPO_ROOT, '.kiln', 'scale-out-bench');

interface Round {
  workers: number;
  wallSeconds: number;
  buildsPerMinute: number;
  /** Share of all CPUs' time busy during the timed part (any process on the machine). */
  cpuBusy: number;
  perWorker: Record<string, number>;
}

/** Busy and total jiffies of all CPUs so far (the first line of /proc/stat). */
async function cpuTimes(): Promise<{ busy: number; total: number }> {
  const fields = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  // user nice system idle iowait irq softirq steal (guest time is already in user); idle and iowait are not busy
  return { busy: total - fields[3] - fields[4], total };
}

async function round(app: ApiProcess, ds: DataSource, file: Buffer, workers: number): Promise<Round> {
  const hosts = Array.from(
    { length: workers },
    (_, i) =>
      new WorkerProcess({
        KILN_WORKER_ROLES: 'build',
        KILN_WORKER_ID: `bench-${workers}w-host-${i + 1}`,
        KILN_HOME: path.join(HOSTS_DIR, `host-${i + 1}`),
        KILN_WORKER_TARGETS: TARGET,
        KILN_WORKER_BUILD_CONCURRENCY: '1',
      }),
  );
  await Promise.all(hosts.map((h) => h.start(300_000)));
  try {
    // Uploads first (not timed): a fresh tenant per build, so six cache keys.
    const jobs = [];
    for (let i = 0; i < BUILDS; i++) {
      const tenant = await createTenant(app, `bench-scale-${workers}w-${i}`);
      const { versionId } = await uploadModel(app, tenant, 'bench-scale', file);
      jobs.push({ tenant, versionId });
    }
    const cpu0 = await cpuTimes();
    const t0 = process.hrtime.bigint();
    const compilations = await Promise.all(
      jobs.map(async ({ tenant, versionId }) => {
        const res = await api(app)
          .post(`/v1/versions/${versionId}/compilations`)
          .set(tenant.auth)
          .send({ targets: [TARGET] })
          .expect(201);
        return { tenant, id: (res.body as { id: string }).id };
      }),
    );
    const done = await Promise.all(compilations.map(({ tenant, id }) => waitForCompilation(app, tenant, id)));
    const wallSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu1 = await cpuTimes();
    for (const c of done) {
      if (c.status !== 'succeeded') throw new Error(`compilation ${c.status}: ${JSON.stringify(c.builds)}`);
      if (c.builds[0].attempt !== 1) throw new Error(`a build was retried: ${JSON.stringify(c.builds)}`);
    }
    const rows: { worker_id: string; n: number }[] = await ds.query(
      `SELECT worker_id, count(*)::int AS n FROM builds WHERE compilation_id = ANY($1::uuid[]) GROUP BY worker_id`,
      [compilations.map((c) => c.id)],
    );
    return {
      workers,
      wallSeconds,
      buildsPerMinute: (BUILDS * 60) / wallSeconds,
      cpuBusy: (cpu1.busy - cpu0.busy) / (cpu1.total - cpu0.total),
      perWorker: Object.fromEntries(rows.map((r) => [r.worker_id, r.n])),
    };
  } finally {
    await Promise.all(hosts.map((h) => h.stop()));
  }
}

async function main(): Promise<void> {
  const config = loadKilnConfig();
  const ds = new DataSource(kilnDataSourceOptions(config.DATABASE_URL, { logging: false }));
  await ds.initialize();
  await rm(HOSTS_DIR, { recursive: true, force: true });
  const app = await startApi();
  const orchestrator = new WorkerProcess({ KILN_WORKER_ROLES: 'orchestrator', KILN_WORKER_ID: 'bench-orchestrator' });
  await orchestrator.start();
  const file = await readFile(modelPath);
  const cpu = (await readFile('/proc/cpuinfo', 'utf8')).match(/model name\s*:\s*(.*)/)?.[1];
  console.log(
    `model ${modelPath}, ${BUILDS} builds of ${TARGET} per round; ${os.availableParallelism()} CPUs (${cpu})`,
  );
  const rounds: Round[] = [];
  try {
    for (const workers of WORKER_COUNTS) {
      const load = os.loadavg()[0].toFixed(2);
      const r = await round(app, ds, file, workers);
      rounds.push(r);
      console.log(
        `${workers} worker(s): wall ${r.wallSeconds.toFixed(1)} s, ${r.buildsPerMinute.toFixed(2)} builds/min, ` +
          `CPUs ${(r.cpuBusy * 100).toFixed(0)} % busy (load before: ${load}; builds per worker: ` +
          `${JSON.stringify(r.perWorker)})`,
      );
    }
    const single = rounds.filter((r) => r.workers === 1);
    const baseline = single.reduce((sum, r) => sum + r.buildsPerMinute, 0) / single.length;
    console.log(`\nthroughput vs 1 worker (mean of its ${single.length} rounds, same machine, same run):`);
    for (const r of rounds) console.log(`  ${r.workers} worker(s): ${(r.buildsPerMinute / baseline).toFixed(2)}×`);
  } finally {
    await orchestrator.stop();
    await app.close();
    await ds.destroy();
    await rm(HOSTS_DIR, { recursive: true, force: true });
  }
}

await main();
