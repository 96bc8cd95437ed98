// Multi-GB uploads with flat memory (bench/README.md, "upload-5gb"): a synthetic torch.export archive of about
// 5 GB (real weights, so it passes the validator) is uploaded through the SDK (presigned multipart) to an API
// process this script starts, while /proc/<pid>/status of the API and of the SDK process is sampled; the same
// bytes are also sent as ONE raw PutObject (AWS SDK, file stream) to the same S3 endpoint: the baseline.
//
//   node --import @swc-node/register/esm-register bench/upload-5gb.ts [--gb 5] [--part-mib 32] [--concurrency 4] [--keep]
//     [--api-from-source]
//
// The API runs as `npm start` runs it: compiled into dist/ (scripts/build.ts, run here first) with the node flags
// of scripts/stack.sh. --api-from-source runs it through the TypeScript loader instead, as the tests do.
//
// Needs the local stack (npm start, or scripts/stack.sh start) and 3x the file size free on disk. Writes
// .kiln/bench/upload-5gb.pt2 (deleted afterwards unless --keep) and bench/out/upload-5gb.json.
import { type ChildProcess, spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import { kilnDataSourceOptions } from '@kiln/database';
import { objectStorageFor } from '@kiln/core';
import type { ObjectStorage } from '@kiln/storage';
import { makeWidePt2 } from '../libs/sdk/src/testing/make-pt2.js';
import { APP_NODE_FLAGS, buildDist, DIST, distEntry } from '../scripts/lib/build-dist.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const NODE_ARGS = ['--import', '@swc-node/register/esm-register'];
const MB = 1e6;

function storage(): ObjectStorage {
  return objectStorageFor(loadKilnConfig());
}

// --- child processes (measured separately from this orchestrator) ---------------------------------------

/** `--child raw <file> <key>`: one PutObject of the whole file, streamed from disk. */
async function childRaw(file: string, key: string): Promise<void> {
  const s3 = storage();
  const { size } = await stat(file);
  const t0 = performance.now();
  await s3.client.send(
    new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: createReadStream(file), ContentLength: size }),
  );
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(`${JSON.stringify({ seconds, size })}\n`);
  s3.client.destroy();
}

/**
 * The SDK side runs as plain JavaScript, as a user's program would: libs/sdk as compiled into dist/ (no TypeScript
 * loader in the measured process; the loader alone costs ~140 MiB of RSS).
 */
async function writeSdkChild(outDir: string): Promise<string> {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const sdk = pathToFileURL(path.join(DIST, 'libs/sdk/src/index.js')).href;
  const child = path.join(outDir, 'upload-child.mjs');
  await writeFile(
    child,
    `import { readFileSync } from 'node:fs';
import { KilnClient } from '${sdk}';
const [file, url, apiKey, partMiB, concurrency] = process.argv.slice(2);
const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
const baselineRssKiB = rss();
const client = new KilnClient({ baseUrl: url, apiKey });
const t0 = performance.now();
let partsDoneAt = 0;
const result = await client.uploadModel(file, {
  model: 'bench-upload-' + Date.now(),
  partSize: Number(partMiB) * 1024 * 1024,
  concurrency: Number(concurrency),
  resumeStateDir: false,
  onProgress: (e) => {
    if (e.type === 'upload-completing' && !partsDoneAt) { partsDoneAt = performance.now(); console.log('parts-done'); }
  },
});
const total = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ uploadSeconds: (partsDoneAt - t0) / 1000, totalSeconds: total, versionId: result.version.id,
  modelId: result.model.id, size: result.version.sizeBytes, partsSent: result.partsSent, baselineRssKiB }));
`,
  );
  return child;
}

// --- sampling ----------------------------------------------------------------------------------------------

interface MemSample {
  rssKiB: number;
  hwmKiB: number;
}

async function readMem(pid: number): Promise<MemSample | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
    return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
  } catch {
    return null;
  }
}

/**
 * Samples a process every `everyMs` until stopped: peak VmRSS seen, and the last VmHWM read. `mark()` ends the
 * first phase: its peak is reported apart (the parts upload, before the completion's validation sweep).
 */
function sampler(
  pid: number,
  everyMs = 100,
): { mark: () => void; stop: () => Promise<{ peakRssMiB: number; firstPhasePeakMiB: number; hwmMiB: number }> } {
  let peak = 0;
  let firstPhasePeak = -1;
  let hwm = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const m = await readMem(pid);
      if (m) {
        peak = Math.max(peak, m.rssKiB);
        hwm = Math.max(hwm, m.hwmKiB);
      }
      await sleep(everyMs);
    }
  })();
  return {
    mark: () => {
      if (firstPhasePeak < 0) firstPhasePeak = peak;
    },
    stop: async () => {
      running = false;
      await loop;
      return {
        peakRssMiB: peak / 1024,
        firstPhasePeakMiB: (firstPhasePeak < 0 ? peak : firstPhasePeak) / 1024,
        hwmMiB: hwm / 1024,
      };
    },
  };
}

function runChild(
  args: string[],
  script: string | null = null,
): { child: ChildProcess; done: Promise<Record<string, number | string>> } {
  const argv = script ? [script, ...args] : [...NODE_ARGS, path.join(ROOT, 'bench/upload-5gb.ts'), ...args];
  const child = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const done = new Promise<Record<string, number | string>>((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, number | string>)
        : reject(new Error(`child ${script ?? args[1]} exited ${code}: ${out}`)),
    ),
  );
  return { child, done };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

// --- the bench ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      gb: { type: 'string', default: '5' },
      'part-mib': { type: 'string', default: '32' },
      concurrency: { type: 'string', default: '4' },
      keep: { type: 'boolean', default: false },
      'api-from-source': { type: 'boolean', default: false },
    },
  });
  const targetBytes = Number(values.gb) * 1e9;
  const config = loadKilnConfig();
  const benchDir = path.join(ROOT, config.KILN_HOME, 'bench');
  await mkdir(benchDir, { recursive: true });
  const disk = await statfs(benchDir);
  const free = disk.bavail * disk.bsize;
  if (free < 3.2 * targetBytes)
    throw new Error(`needs ${((3.2 * targetBytes) / 1e9).toFixed(1)} GB free, have ${(free / 1e9).toFixed(1)} GB`);

  // 5 square float32 weights sized to reach the target (about 1 GB each for 5 GB).
  const layers = 5;
  const width = Math.floor(Math.sqrt(targetBytes / layers / 4));
  const file = path.join(benchDir, 'upload-5gb.pt2');
  let size: number;
  const existing = await stat(file).catch(() => null);
  if (existing && Math.abs(existing.size - targetBytes) < 0.01 * targetBytes) {
    size = existing.size; // left by an earlier run with --keep
    console.log(`reusing ${file} (${(size / 1e9).toFixed(2)} GB)`);
  } else {
    console.log(`writing ${file}: ${layers} weights of ${width}x${width} float32 (torch.export.save) ...`);
    const t = performance.now();
    size = await makeWidePt2(file, { width, layers, python: path.resolve(ROOT, config.KILN_PYTHON) });
    console.log(`  ${(size / 1e9).toFixed(2)} GB in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  }

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const apiLog = path.join(benchDir, 'api.log');
  const fromSource = values['api-from-source'];
  await buildDist();
  const apiArgs = fromSource ? [...NODE_ARGS, 'apps/api/src/main.ts'] : [...APP_NODE_FLAGS, distEntry('api')];
  console.log(`API: node ${apiArgs.join(' ')}`);
  const api = spawn(process.execPath, apiArgs, {
    cwd: ROOT,
    env: { ...process.env, KILN_API_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let apiOut = '';
  api.stdout.on('data', (c: Buffer) => (apiOut += c.toString()));
  api.stderr.on('data', (c: Buffer) => (apiOut += c.toString()));
  const s3 = storage();
  const rawKey = `bench/upload-5gb-raw-${Date.now()}.pt2`;
  let uploaded: Record<string, number | string> | null = null;
  try {
    for (let i = 0; ; i++) {
      const ok = await fetch(`${url}/v1/health`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (api.exitCode !== null || i > 600) throw new Error(`API did not start:\n${apiOut}`);
      await sleep(200);
    }
    const tenant = (await (
      await fetch(`${url}/v1/admin/tenants`, {
        method: 'POST',
        headers: { authorization: `Bearer ${config.KILN_ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `bench-upload-${Date.now()}` }),
      })
    ).json()) as { apiKey: { key: string } };
    await sleep(1000);
    const apiBefore = (await readMem(api.pid!))!;

    // Baseline: one PutObject of the same bytes to the same endpoint.
    console.log('raw PutObject of the whole file ...');
    const raw = runChild(['--child', 'raw', file, rawKey]);
    const rawResult = await raw.done;
    await s3.delete(rawKey);

    // The SDK: presigned multipart through the API, then completion (validation of the stored archive).
    console.log(`SDK upload (parts of ${values['part-mib']} MiB, ${values.concurrency} at once) ...`);
    const sdkChild = await writeSdkChild(path.join(benchDir, 'sdk-js'));
    const sdk = runChild([file, url, tenant.apiKey.key, values['part-mib'], values.concurrency], sdkChild);
    const apiMem = sampler(api.pid!);
    const sdkMem = sampler(sdk.child.pid!);
    sdk.child.stdout?.on('data', (c: Buffer) => {
      if (c.toString().includes('parts-done')) apiMem.mark();
    });
    uploaded = await sdk.done;
    const [apiPeak, sdkPeak] = await Promise.all([apiMem.stop(), sdkMem.stop()]);

    const rawMBs = size / MB / Number(rawResult.seconds);
    const partsMBs = size / MB / Number(uploaded.uploadSeconds);
    const totalMBs = size / MB / Number(uploaded.totalSeconds);
    const report = {
      date: new Date().toISOString(),
      machine: `${(await import('node:os')).cpus().length} cores, ${((await import('node:os')).totalmem() / 2 ** 30).toFixed(0)} GiB`,
      fileBytes: size,
      partMiB: Number(values['part-mib']),
      concurrency: Number(values.concurrency),
      rawPut: { seconds: Number(rawResult.seconds), MBps: rawMBs },
      sdk: {
        partsSeconds: Number(uploaded.uploadSeconds),
        partsMBps: partsMBs,
        totalSecondsWithValidation: Number(uploaded.totalSeconds),
        totalMBps: totalMBs,
        ratioToRawPut: partsMBs / rawMBs,
        rssBeforeMiB: Number(uploaded.baselineRssKiB) / 1024,
        peakRssMiB: sdkPeak.peakRssMiB,
        hwmMiB: sdkPeak.hwmMiB,
      },
      api: {
        rssBeforeMiB: apiBefore.rssKiB / 1024,
        peakRssDuringMiB: apiPeak.peakRssMiB,
        peakRssDuringPartsMiB: apiPeak.firstPhasePeakMiB,
        growthMiB: apiPeak.peakRssMiB - apiBefore.rssKiB / 1024,
        hwmSinceStartMiB: apiPeak.hwmMiB,
      },
    };
    await mkdir(path.join(ROOT, 'bench/out'), { recursive: true });
    await writeFile(path.join(ROOT, 'bench/out/upload-5gb.json'), JSON.stringify(report, null, 2));
    const f = (n: number): string => n.toFixed(1);
    console.log(`
file                         ${(size / 1e9).toFixed(2)} GB
raw PutObject                ${f(report.rawPut.seconds)} s   ${f(rawMBs)} MB/s
SDK parts (hash + PUTs)      ${f(report.sdk.partsSeconds)} s   ${f(partsMBs)} MB/s   = ${report.sdk.ratioToRawPut.toFixed(2)} x raw
SDK incl. complete+validate  ${f(report.sdk.totalSecondsWithValidation)} s   ${f(totalMBs)} MB/s
SDK process (plain JS)       RSS ${f(report.sdk.rssBeforeMiB)} MiB before, peak ${f(sdkPeak.peakRssMiB)} MiB (VmHWM ${f(sdkPeak.hwmMiB)} MiB)
API process                  RSS ${f(report.api.rssBeforeMiB)} MiB before, peak ${f(apiPeak.firstPhasePeakMiB)} MiB during the parts, ${f(apiPeak.peakRssMiB)} MiB with completion (+${f(report.api.growthMiB)} MiB)
written to bench/out/upload-5gb.json`);
  } finally {
    await writeFile(apiLog, apiOut);
    api.kill('SIGTERM');
    await s3.delete(rawKey).catch(() => undefined);
    if (uploaded) {
      // The bench model, its version and its 5 GB object go again.
      const ds = new DataSource(kilnDataSourceOptions(config.DATABASE_URL, { logging: false }));
      await ds.initialize();
      const rows = await ds.query<{ object_key: string }[]>(`SELECT object_key FROM model_versions WHERE id = $1`, [
        uploaded.versionId,
      ]);
      for (const r of rows) await s3.delete(r.object_key).catch(() => undefined);
      await ds.query(`DELETE FROM models WHERE id = $1`, [uploaded.modelId]);
      await ds.destroy();
    }
    s3.client.destroy();
    if (!values.keep) await rm(file, { force: true });
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--child' && argv[1] === 'raw') await childRaw(argv[2], argv[3]);
else await main();
