// A multi-GB model through the whole stack (issue 17 item 5; bench/README.md, "A 2 GiB model end to end"): a plain
// torch MLP with 2 GiB of float32 weights, made by bench/big_model.py (no downloads), exported with torch.export,
// uploaded by the SDK (presigned multipart) and compiled through the API and a build worker for one x86 target,
// resolved with this host's device fingerprint, then fetched and run by the device runtime (the `kiln-device` CLI).
//
//   node --import @swc-node/register/esm-register bench/big-model.ts [--width 8192] [--layers 8] [--max-batch 32]
//     [--target linux-x86_64-v2] [--runs 5] [--keep]
//
// The API and the worker run as `npm start` runs them (compiled into dist/, test/support/kiln-harness.ts); the SDK
// side runs as plain JavaScript from dist/ (a user's program, no TypeScript loader in it). While the bench runs, it
// samples every 250 ms: VmRSS of the API, the worker, every process below the worker (the sandboxed compile driver,
// its verifier and the compiler), the SDK process and the device runtime; and every second the bytes allocated under
// the worker's work folder (KILN_HOME/work: the job folders) and the device's cache and temp folders. Peaks are kept
// per stage (upload, each build phase, device fetch, device run). Phase walls come from the SDK's progress events
// (polled every 500 ms), the worker's own phase clock (its /metrics) and the build log.
//
// Needs the local stack (scripts/stack.sh start) and no other worker serving the target (the bench's worker must be
// the one that builds); ~10x the model's size free on disk (model, S3, job folder, device cache) and ~12 GB of free
// memory (the build's cgroup allows KILN_BUILD_MEMORY_MB; the device holds the artifact and the portable graph).
// Writes .kiln/bench/big-model/ (the model is deleted afterwards unless --keep) and bench/out/big-model.json.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdir, readdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadKilnConfig } from '@kiln/config';
import { KilnClient } from '@kiln/sdk';
import { DIST } from '../scripts/lib/build-dist.js';
import { createTenant, REPO_ROOT, startApi, WorkerProcess } from '../test/support/kiln-harness.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const SAMPLE_MS = 250;
const DISK_SAMPLE_MS = 1000;

// --- /proc sampling ------------------------------------------------------------------------------------------------

/** VmRSS of a process in KiB, or null when it is gone. */
async function rssKiB(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) : 0; // a zombie has no VmRSS line
  } catch {
    return null;
  }
}

/** Every process below `root` (not `root` itself), from the parent pids in /proc/<pid>/stat. */
async function descendants(root: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = await readFile(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** A short name for a process of the build's tree: the driver, its verifier, the C++ compiler, ... */
async function processLabel(pid: number): Promise<string> {
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
    const i = argv.indexOf('kiln_driver');
    if (i >= 0) return `kiln_driver ${argv[i + 1] ?? ''}`.trim();
    if (argv.includes('kiln_runtime') || argv.some((a) => a.endsWith('/kiln-device')))
      return `kiln-device ${argv.find((a) => a === 'fetch' || a === 'run') ?? ''}`.trim();
    return path.basename(argv[0] ?? '?');
  } catch {
    return '?';
  }
}

/** Bytes allocated (st_blocks) under a folder, following no links; 0 when it does not exist. */
async function diskBytes(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await diskBytes(p);
    else {
      try {
        total += (await stat(p)).blocks * 512;
      } catch {
        // removed meanwhile
      }
    }
  }
  return total;
}

interface Peak {
  kib: number;
  what?: string;
}

/** Peaks per stage of: named processes, a process tree (sum and largest member), and folders on disk. */
class Sampler {
  stage = 'start';
  readonly procs = new Map<string, number>();
  /** tree name -> root pid: the processes BELOW it are sampled. */
  readonly trees = new Map<string, number>();
  readonly dirs = new Map<string, string>();
  readonly peaks = new Map<string, Map<string, Peak>>(); // stage -> series -> peak
  private running = true;
  private loops: Promise<void>[] = [];

  start(): void {
    this.loops = [this.memoryLoop(), this.diskLoop()];
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private note(series: string, kib: number, what?: string): void {
    const stage = this.peaks.get(this.stage) ?? new Map<string, Peak>();
    this.peaks.set(this.stage, stage);
    const prev = stage.get(series);
    if (!prev || kib > prev.kib) stage.set(series, { kib, what });
  }

  private async memoryLoop(): Promise<void> {
    while (this.running) {
      for (const [name, pid] of this.procs) {
        const kib = await rssKiB(pid);
        if (kib !== null) this.note(name, kib);
      }
      for (const [name, root] of this.trees) {
        let sum = 0;
        let largest: { kib: number; pid: number } | null = null;
        const seen: string[] = [];
        for (const pid of await descendants(root)) {
          const kib = await rssKiB(pid);
          if (kib === null) continue;
          sum += kib;
          if (!largest || kib > largest.kib) largest = { kib, pid };
          if (kib > 50 * 1024) seen.push(`${await processLabel(pid)} ${(kib / 1024).toFixed(0)} MiB`);
        }
        if (sum > 0) this.note(`${name} (sum)`, sum, seen.join(', '));
        if (largest) this.note(`${name} (largest)`, largest.kib, await processLabel(largest.pid));
      }
      await sleep(SAMPLE_MS);
    }
  }

  private async diskLoop(): Promise<void> {
    while (this.running) {
      for (const [name, dir] of this.dirs) this.note(`disk ${name}`, (await diskBytes(dir)) / 1024);
      await sleep(DISK_SAMPLE_MS);
    }
  }

  /** The peak of one series over all stages (with the stage it happened in). */
  overall(series: string): (Peak & { stage: string }) | null {
    let best: (Peak & { stage: string }) | null = null;
    for (const [stage, m] of this.peaks) {
      const p = m.get(series);
      if (p && (!best || p.kib > best.kib)) best = { ...p, stage };
    }
    return best;
  }
}

// --- child processes -----------------------------------------------------------------------------------------------

/**
 * The SDK side as plain JavaScript (libs/sdk as compiled into dist/): compileRemote() from the file on disk, every
 * progress event printed as a JSON line with its time, the result last.
 */
async function writeSdkChild(dir: string): Promise<string> {
  const sdk = pathToFileURL(path.join(DIST, 'libs/sdk/src/index.js')).href;
  const file = path.join(dir, 'sdk-child.mjs');
  await writeFile(
    file,
    `import { KilnClient } from '${sdk}';
const [file, url, apiKey, model, target] = process.argv.slice(2);
const client = new KilnClient({ baseUrl: url, apiKey });
const emit = (o) => console.log(JSON.stringify({ t: Date.now(), ...o }));
let lastUpload = 0;
const result = await client.compileRemote(file, {
  model, targets: [target], pollIntervalMs: 500, resumeStateDir: false,
  onProgress: (e) => {
    if (e.type === 'upload') {
      if (Date.now() - lastUpload < 2000 && e.uploadedBytes < e.totalBytes) return;
      lastUpload = Date.now();
      emit({ type: 'upload', uploadedBytes: e.uploadedBytes, totalBytes: e.totalBytes });
    } else if (e.type === 'build') emit({ type: 'build', status: e.status, phase: e.phase });
    else emit(e);
  },
});
emit({ type: 'result', ok: result.ok, modelId: result.model.id, versionId: result.version.id,
  compilationId: result.compilation.id, artifacts: result.artifacts.map((a) => ({ id: a.id, sizeBytes: a.sizeBytes })),
  targets: result.targets.map((t) => ({ targetId: t.targetId, status: t.status, errorCode: t.errorCode, errorMessage: t.errorMessage })) });
`,
  );
  return file;
}

/** One line of the SDK child: a progress event (build status and phase for `build`) with its time. */
interface SdkEvent {
  t: number;
  type: string;
  status?: string;
  phase?: string | null;
  [k: string]: unknown;
}

interface Spawned {
  child: ChildProcess;
  exit: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
}

/** Spawns a process; `onLine` sees each stdout line as it comes (with the time it came). */
function spawnMeasured(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  onLine?: (line: string) => void,
  onErrLine?: (line: string) => void,
): Spawned {
  const child = spawn(cmd, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  createInterface({ input: child.stdout }).on('line', (l) => {
    out += `${l}\n`;
    onLine?.(l);
  });
  createInterface({ input: child.stderr }).on('line', (l) => {
    err += `${l}\n`;
    onErrLine?.(l);
  });
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, exit, stdout: () => out, stderr: () => err };
}

/** Parses `name{labels} value` lines of a Prometheus text page: sums of one metric, by the value of `label`. */
function metricByLabel(page: string, metric: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of page.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const m = new RegExp(`${label}="([^"]*)"`).exec(line);
    if (m) out[m[1]] = (out[m[1]] ?? 0) + value;
  }
  return out;
}

// --- the bench -----------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      width: { type: 'string', default: '8192' },
      layers: { type: 'string', default: '8' },
      'max-batch': { type: 'string', default: '32' },
      target: { type: 'string', default: 'linux-x86_64-v2' },
      runs: { type: 'string', default: '5' },
      keep: { type: 'boolean', default: false },
    },
  });
  const config = loadKilnConfig();
  const width = Number(values.width);
  const layers = Number(values.layers);
  const weightBytes = layers * (width * width + width) * 4;
  const benchDir = path.resolve(REPO_ROOT, config.KILN_HOME, 'bench', 'big-model');
  await mkdir(benchDir, { recursive: true });
  const disk = await statfs(benchDir);
  const free = disk.bavail * disk.bsize;
  if (free < 10 * weightBytes) {
    throw new Error(`needs ${((10 * weightBytes) / 1e9).toFixed(1)} GB free on disk, have ${(free / 1e9).toFixed(1)}`);
  }
  const meminfo = await readFile('/proc/meminfo', 'utf8');
  const memAvailable = Number(/MemAvailable:\s+(\d+)/.exec(meminfo)?.[1] ?? 0) * 1024;
  const load = () => os.loadavg().map((l) => l.toFixed(1));
  const cpu = /model name\s*:\s*(.*)/.exec(await readFile('/proc/cpuinfo', 'utf8'))?.[1] ?? '?';
  console.log(
    `machine: ${os.cpus().length} CPUs (${cpu}), ${(os.totalmem() / GiB).toFixed(0)} GiB, ` +
      `${(memAvailable / GiB).toFixed(1)} GiB available, load ${load().join(' ')}; ${(free / 1e9).toFixed(0)} GB free disk`,
  );

  const python = path.resolve(REPO_ROOT, config.KILN_PYTHON);
  const kilnDevice = path.join(path.dirname(python), 'kiln-device');
  const modelFile = path.join(benchDir, `big-model-${width}x${layers}.pt2`);
  const timeline: { t: number; what: string }[] = [];
  const t0 = Date.now();
  const mark = (what: string): void => {
    timeline.push({ t: Date.now(), what });
    console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(7)} s] ${what}`);
  };

  // 1. The model.
  let made: Record<string, number | string>;
  const existing = await stat(modelFile).catch(() => null);
  if (existing) {
    made = { path: modelFile, fileBytes: existing.size, weightBytes, reused: 'yes' };
    mark(`reusing ${modelFile} (${(existing.size / GiB).toFixed(2)} GiB, left by --keep)`);
  } else {
    mark(`making ${layers} x Linear(${width}, ${width}) (${(weightBytes / GiB).toFixed(2)} GiB of float32 weights)`);
    const maker = spawnMeasured(
      python,
      [
        path.join(REPO_ROOT, 'bench/big_model.py'),
        modelFile,
        '--width',
        String(width),
        '--layers',
        String(layers),
        '--max-batch',
        values['max-batch'],
      ],
      { ...process.env, PYTHONWARNINGS: 'ignore' },
    );
    if ((await maker.exit) !== 0) throw new Error(`big_model.py failed:\n${maker.stderr()}`);
    made = JSON.parse(maker.stdout().trim().split('\n').at(-1)!) as Record<string, number | string>;
    mark(`made ${modelFile}: ${(Number(made.fileBytes) / GiB).toFixed(2)} GiB in ${made.seconds} s`);
  }

  // 2. The services, as npm start runs them.
  const workDir = config.workDir;
  const jobsDir = path.join(workDir, 'jobs');
  const deviceCache = path.join(benchDir, 'device-cache');
  const deviceTmp = path.join(benchDir, 'device-tmp');
  await rm(deviceCache, { recursive: true, force: true });
  await rm(deviceTmp, { recursive: true, force: true });
  await mkdir(deviceTmp, { recursive: true });

  mark('starting the API and a worker (compiled, from dist/)');
  const app = await startApi();
  const worker = new WorkerProcess({ KILN_WORKER_ID: 'bench-big-model' });
  const sampler = new Sampler();
  let modelId: string | null = null;
  let deviceKeyId: string | null = null;
  const tenantClient: { client?: KilnClient } = {};
  const report: Record<string, unknown> = {};
  try {
    await worker.start();
    const target = values.target;
    if (!worker.servedX86Targets().includes(target)) {
      throw new Error(`the worker does not serve ${target} (it serves ${worker.servedX86Targets().join(', ')})`);
    }
    const apiPid = app.pid!;
    const workerPid = worker.pid!;
    sampler.procs.set('API', apiPid);
    sampler.procs.set('worker', workerPid);
    sampler.trees.set('build tree', workerPid);
    sampler.dirs.set('worker work dir', workDir);
    sampler.dirs.set('device cache', deviceCache);
    sampler.dirs.set('device tmp', deviceTmp);
    await sleep(2000);
    const idle = { api: (await rssKiB(apiPid))! / 1024, worker: (await rssKiB(workerPid))! / 1024 };
    mark(`API RSS ${idle.api.toFixed(0)} MiB, worker RSS ${idle.worker.toFixed(0)} MiB (idle)`);
    sampler.start();

    const tenant = await createTenant(app, 'bench-big-model');
    const client = new KilnClient({ baseUrl: app.url, apiKey: tenant.key });
    tenantClient.client = client;
    const modelName = `big-mlp-${Date.now()}`;

    // 3. Upload + compile through the SDK (a plain-JS child process), following its progress events.
    const sdkFile = await writeSdkChild(benchDir);
    const events: SdkEvent[] = [];
    let result: Record<string, unknown> | null = null;
    sampler.stage = 'upload parts';
    mark(`SDK: compileRemote(${path.basename(modelFile)}, ${target})`);
    const sdkStart = Date.now();
    const sdk = spawnMeasured(
      process.execPath,
      [sdkFile, modelFile, app.url, tenant.key, modelName, target],
      { ...process.env },
      (line) => {
        let e: SdkEvent;
        try {
          e = JSON.parse(line) as SdkEvent;
        } catch {
          console.log(`  sdk: ${line}`);
          return;
        }
        events.push(e);
        if (e.type === 'upload-completing') {
          sampler.stage = 'upload completion (validation)';
          mark('SDK: parts uploaded; completing (the API validates the archive)');
        } else if (e.type === 'uploaded') {
          sampler.stage = 'compilation queued';
          mark(`SDK: uploaded, version ${String(e.versionId)}`);
        } else if (e.type === 'build') {
          sampler.stage = `build: ${e.status ?? ''}${e.phase ? ` (${e.phase})` : ''}`;
          mark(`build ${sampler.stage.slice(7)}`);
        } else if (e.type === 'result') result = e;
        else if (e.type === 'upload')
          console.log(`  upload ${((Number(e.uploadedBytes) / Number(e.totalBytes)) * 100).toFixed(0)} %`);
      },
      (line) => console.log(`  sdk stderr: ${line}`),
    );
    sampler.procs.set('SDK', sdk.child.pid!);
    const sdkCode = await sdk.exit;
    sampler.procs.delete('SDK');
    sampler.stage = 'after the build';
    const final = result as {
      ok: boolean;
      modelId: string;
      versionId: string;
      compilationId: string;
      artifacts: { id: string; sizeBytes: number }[];
      targets: { targetId: string; status: string; errorCode: string | null; errorMessage: string | null }[];
    } | null;
    if (sdkCode !== 0 || !final) throw new Error(`the SDK process exited ${sdkCode}:\n${sdk.stderr()}`);
    modelId = final.modelId;
    const buildLog = await client.getBuildLog(final.compilationId, target);
    const logText = (buildLog as { log?: string }).log ?? JSON.stringify(buildLog);
    await writeFile(path.join(benchDir, 'build.log'), logText);
    if (!final.ok) throw new Error(`the build failed: ${JSON.stringify(final.targets)}; log in ${benchDir}/build.log`);
    mark(`SDK: compilation succeeded (${((Date.now() - sdkStart) / 1000).toFixed(1)} s after the upload began)`);

    // The job folder must be gone: nothing of the build left under the worker's work folder.
    await sleep(1500);
    const leftJobs = (await readdir(jobsDir).catch(() => [] as string[])).filter((n) => n.startsWith('job-'));
    const workLeft = await diskBytes(workDir);
    const cgroupPeak = /peak (\d+(?:\.\d+)?) (GiB|MiB)/.exec(logText);
    const workerMetrics = await (await fetch(worker.metricsUrl)).text();
    const phaseSums = metricByLabel(workerMetrics, 'kiln_build_phase_duration_seconds_sum', 'phase');
    const artifact = await client.getArtifact(final.artifacts[0].id);

    // 4. The device side: a device token for this model, the channel, the resolver, then kiln-device.
    await client.moveChannel(final.modelId, 'prod', { versionId: final.versionId });
    const deviceKey = await client.createKey({ kind: 'device', name: 'bench device', models: [modelName] });
    deviceKeyId = deviceKey.id;
    const signingKey = (await client.listSigningKeys())[0].publicKey;
    const deviceEnv = {
      ...process.env,
      KILN_API_URL: app.url,
      KILN_DEVICE_TOKEN: deviceKey.key,
      KILN_SIGNING_PUBLIC_KEY: signingKey,
      KILN_CACHE_DIR: deviceCache,
      TMPDIR: deviceTmp,
    };
    sampler.stage = 'device fingerprint + resolve';
    const fpStart = performance.now();
    const fpRun = spawnMeasured(kilnDevice, ['fingerprint'], deviceEnv);
    if ((await fpRun.exit) !== 0) throw new Error(`kiln-device fingerprint failed:\n${fpRun.stderr()}`);
    const fingerprintSeconds = (performance.now() - fpStart) / 1000;
    const fingerprint = JSON.parse(fpRun.stdout()) as unknown;
    const resolveStart = performance.now();
    const resolved = await fetch(`${app.url}/v1/resolve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${deviceKey.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: `${modelName}@prod`, fingerprint }),
    });
    const resolution = (await resolved.json()) as { artifact?: { targetId: string } | null };
    const resolveMs = performance.now() - resolveStart;
    if (!resolved.ok) throw new Error(`resolve: HTTP ${resolved.status} ${JSON.stringify(resolution)}`);
    mark(
      `resolved ${modelName}@prod with this host's fingerprint in ${resolveMs.toFixed(0)} ms: ` +
        `${resolution.artifact?.targetId ?? 'the portable graph'} (fingerprint ${fingerprintSeconds.toFixed(1)} s)`,
    );

    const runDevice = async (stage: string, args: string[]) => {
      sampler.stage = stage;
      mark(`kiln-device ${args.join(' ')}`);
      const stderrLines: { t: number; line: string }[] = [];
      const start = Date.now();
      const p = spawnMeasured(kilnDevice, args, deviceEnv, undefined, (line) =>
        stderrLines.push({ t: Date.now() - start, line }),
      );
      sampler.trees.set('device', p.child.pid!);
      sampler.procs.set('device (kiln-device)', p.child.pid!);
      const code = await p.exit;
      sampler.trees.delete('device');
      sampler.procs.delete('device (kiln-device)');
      const seconds = (Date.now() - start) / 1000;
      await writeFile(
        path.join(benchDir, `device-${args[0]}.log`),
        stderrLines.map((l) => `${(l.t / 1000).toFixed(2)} ${l.line}`).join('\n'),
      );
      if (code !== 0) throw new Error(`kiln-device ${args[0]} exited ${code}:\n${p.stderr()}\n${p.stdout()}`);
      mark(`kiln-device ${args[0]} done in ${seconds.toFixed(1)} s`);
      return { seconds, out: JSON.parse(p.stdout()) as Record<string, unknown>, stderrLines };
    };
    const ref = `${modelName}@prod`;
    const fetched = await runDevice('device fetch (download, verify, assemble)', [
      'fetch',
      ref,
      '--json',
      '--no-progress',
    ]);
    const ran = await runDevice('device run (verify cache, load, portable, run)', [
      'run',
      ref,
      '--json',
      '--no-progress',
      '-v',
      '--runs',
      values.runs,
      '--warmup',
      '1',
    ]);
    sampler.stage = 'end';
    await sleep(1200);
    await sampler.stop();
    const deviceDisk = await diskBytes(deviceCache);

    // 5. The numbers.
    const at = (type: string, pred: (e: (typeof events)[number]) => boolean = () => true): number | null =>
      events.find((e) => e.type === type && pred(e))?.t ?? null;
    const uploadEnd = at('upload-completing');
    const uploaded = at('uploaded');
    const created = at('compilation');
    const buildStart = at('build', (e) => e.status === 'running');
    const buildEnd = at('build', (e) => e.status === 'succeeded');
    const phases: { phase: string; seconds: number }[] = [];
    const buildEvents = events.filter((e) => e.type === 'build');
    for (let i = 0; i < buildEvents.length - 1; i++) {
      const e = buildEvents[i];
      phases.push({
        phase: `${e.status ?? ''}${e.phase ? ` (${e.phase})` : ''}`,
        seconds: (buildEvents[i + 1].t - e.t) / 1000,
      });
    }
    const mib = (kib: number | undefined): number => Math.round((kib ?? 0) / 1024);
    const peakOf = (series: string) => {
      const p = sampler.overall(series);
      return p ? { MiB: mib(p.kib), stage: p.stage, ...(p.what ? { what: p.what } : {}) } : null;
    };
    const perStage: Record<string, Record<string, number>> = {};
    for (const [stage, m] of sampler.peaks) {
      perStage[stage] = Object.fromEntries([...m].map(([k, v]) => [k, mib(v.kib)]));
    }
    const runOut = ran.out as {
      maxAbsError: number;
      eagerMs: number;
      modelMs: number;
      speedup: number;
      latency: unknown;
      ran: { kind: string; targetId: string };
      threads: number;
    };
    Object.assign(report, {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpu, memGiB: Math.round(os.totalmem() / GiB), loadAtEnd: load() },
      memAvailableAtStartGiB: +(memAvailable / GiB).toFixed(1),
      model: { ...made, width, layers, maxBatch: Number(values['max-batch']) },
      target,
      walls: {
        uploadPartsS: uploadEnd && (uploadEnd - sdkStart) / 1000,
        uploadCompletionS: uploadEnd && uploaded && (uploaded - uploadEnd) / 1000,
        compilationCreatedS: uploaded && created && (created - uploaded) / 1000,
        buildS: buildStart && buildEnd && (buildEnd - buildStart) / 1000,
        submitToSucceededS: created && buildEnd && (buildEnd - created) / 1000,
        buildPhasesSeenBySdk: phases,
        workerPhaseClockS: phaseSums,
        fingerprintS: fingerprintSeconds,
        resolveMs,
        deviceFetchS: fetched.seconds,
        deviceRunS: ran.seconds,
      },
      memoryMiB: {
        idle: idle,
        api: peakOf('API'),
        worker: peakOf('worker'),
        buildTreeSum: peakOf('build tree (sum)'),
        buildTreeLargest: peakOf('build tree (largest)'),
        buildCgroupPeak: cgroupPeak ? `${cgroupPeak[1]} ${cgroupPeak[2]}` : null,
        sdk: peakOf('SDK'),
        device: peakOf('device (kiln-device)'),
        deviceTree: peakOf('device (sum)'),
        perStage,
      },
      diskMiB: {
        workerWorkDirPeak: peakOf('disk worker work dir'),
        workerWorkDirAfter: Math.round(workLeft / MiB),
        jobFoldersLeft: leftJobs,
        deviceCachePeak: peakOf('disk device cache'),
        deviceTmpPeak: peakOf('disk device tmp'),
        deviceCacheAfter: Math.round(deviceDisk / MiB),
      },
      artifact: {
        id: artifact.id,
        sizeBytes: artifact.sizeBytes,
        parts: (artifact.parts ?? []).map((p) => ({ role: p.role, size: p.size })),
        verification: { maxAbsError: artifact.verification?.maxAbsError, passed: artifact.verification?.passed },
        timing: artifact.timing,
      },
      resolvedTarget: resolution.artifact?.targetId ?? null,
      device: {
        ran: runOut.ran,
        maxAbsError: runOut.maxAbsError,
        eagerMs: runOut.eagerMs,
        modelMs: runOut.modelMs,
        speedup: runOut.speedup,
        threads: runOut.threads,
        latency: runOut.latency,
        fetchedParts: (fetched.out.verified as { parts?: { role: string; size: number }[] } | undefined)?.parts?.map(
          (p) => ({ role: p.role, size: p.size }),
        ),
      },
    });
    await mkdir(path.join(REPO_ROOT, 'bench/out'), { recursive: true });
    await writeFile(path.join(REPO_ROOT, 'bench/out/big-model.json'), JSON.stringify(report, null, 2));
    printSummary(report);
  } finally {
    await sampler.stop();
    if (tenantClient.client && modelId) {
      // The model, its version, artifact and S3 objects go again (the key too).
      if (deviceKeyId) await tenantClient.client.revokeKey(deviceKeyId).catch(() => undefined);
      await tenantClient.client
        .deleteModel(modelId, { force: true })
        .catch((err: unknown) => console.error(`deleting the bench model failed: ${String(err)}`));
    }
    await writeFile(path.join(benchDir, 'worker.log'), worker.output);
    await writeFile(path.join(benchDir, 'api.log'), app.output);
    await worker.stop();
    await app.close();
    await rm(deviceCache, { recursive: true, force: true });
    await rm(deviceTmp, { recursive: true, force: true });
    if (!values.keep) await rm(modelFile, { force: true });
  }
}

function printSummary(r: Record<string, unknown>): void {
  const w = r.walls as Record<string, unknown>;
  const m = r.memoryMiB as Record<string, unknown>;
  const d = r.diskMiB as Record<string, unknown>;
  const s = (v: unknown): string => (typeof v === 'number' ? v.toFixed(1) : JSON.stringify(v));
  console.log(`
--- ${JSON.stringify(r.model)} → ${String(r.target)}
upload (SDK parts)            ${s(w.uploadPartsS)} s
upload completion (validate)  ${s(w.uploadCompletionS)} s
build (running → succeeded)   ${s(w.buildS)} s; phases seen by the SDK:
${(w.buildPhasesSeenBySdk as { phase: string; seconds: number }[]).map((p) => `    ${p.phase.padEnd(28)} ${p.seconds.toFixed(1)} s`).join('\n')}
worker phase clock            ${JSON.stringify(w.workerPhaseClockS)}
fingerprint / resolve         ${s(w.fingerprintS)} s / ${s(w.resolveMs)} ms → ${String(r.resolvedTarget)}
device fetch / run            ${s(w.deviceFetchS)} s / ${s(w.deviceRunS)} s
peak RSS MiB                  API ${s(m.api)}, worker ${s(m.worker)}
                              build tree sum ${s(m.buildTreeSum)}
                              build tree largest ${s(m.buildTreeLargest)}; cgroup peak ${s(m.buildCgroupPeak)}
                              SDK ${s(m.sdk)}, device ${s(m.device)}
disk MiB                      worker work dir peak ${s(d.workerWorkDirPeak)}, after ${s(d.workerWorkDirAfter)}; job folders left ${s(d.jobFoldersLeft)}
                              device cache peak ${s(d.deviceCachePeak)}, device tmp peak ${s(d.deviceTmpPeak)}
device run                    ${JSON.stringify(r.device)}
written to bench/out/big-model.json`);
}

await main();
