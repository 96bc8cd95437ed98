import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, lstat, open, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type ArtifactManifest, ErrorCode, isErrorCode } from '@kiln/contracts';
import type { CompileRecipe, TargetRequirement } from '@kiln/targets';
import { checkManifest } from '../artifacts/manifest-check.js';
import {
  createJobFolder,
  type JobFolder,
  jobSandboxRequest,
  type JobSandboxSettings,
  placeModelFile,
} from './job-folder.js';
import { planSandbox, type SandboxRecord, SandboxUnavailableError } from './sandbox-plan.js';
import { runSandboxed, type SandboxResult } from './sandbox-run.js';
import type { VecIsaAnswer } from './vec-isa-check.js';

/**
 * Runs the Python compile driver (`python -m kiln_driver build …`) for one job inside the sandbox and turns
 * whatever happened into a typed outcome: a verified manifest with its parts on disk, or an error code the
 * activity hands to Temporal (retryable or not). The job folder and what the job sees: job-folder.ts.
 * The driver writes `out/manifest.json` + `out/parts/<sha256>` on success, `out/error.json` on failure.
 * Everything in out/ was written by untrusted code: it is read without following symlinks, size-capped,
 * and every part is re-hashed before anyone uploads it.
 */

/**
 * The job.json the driver reads (kiln_driver/job.py). Its JSON Schema is libs/contracts/src/schemas/
 * driver-job.schema.json: driver-runner.spec.ts checks a real job.json against it, and the shared vectors
 * (test/fixtures/contracts/driver-jobs.json) hold the schema and the driver's parse_job together.
 */
export interface DriverJob {
  /** The tenant the artifact is built for: the driver writes it into the signed manifest (devices check it). */
  tenantId?: string;
  targetId: string;
  recipe: CompileRecipe;
  recipeHash: string;
  modelContentHash: string;
  cacheKey: string;
  requires: TargetRequirement;
  host: { cpuModel: string; x86Level: number | null; gpuName: string | null; driverVersion: string | null };
  /** What the sandbox enforces for this build; filled by runCompileDriver. */
  sandbox: Record<string, unknown>;
  /**
   * Timing protocol. `maxSeconds` bounds the whole measurement, `lockWaitSeconds` every wait for the host's
   * timing lock (a build never waits on another build for longer: it measures anyway and says so).
   */
  timing: { warmup: number; runs: number; maxSeconds?: number; lockWaitSeconds?: number };
  seed: number;
  /** W3C trace context of the build activity's span (tracing on): the driver stamps it on its phase events. */
  traceparent?: string;
  /**
   * A weights-only update: an earlier artifact's code part for the same target and recipe, downloaded into the job
   * folder (`codePart` relative to job.json's folder). The driver reuses it when the code it generates for this
   * program equals the donor's, else builds in full (manifest `reuse`). Set by runCompileDriver from its
   * `codeDonor` option.
   */
  codeDonor?: { codePart: string; sha256: string; cacheKey: string };
  /** The worker's vector-ISA check, made once (vec-isa-check.ts); the driver then need not repeat it. */
  vecIsa?: VecIsaAnswer;
  /**
   * Per-tenant inductor caches (issue 17 item 3): `restore` names the scope's latest cache, downloaded into the job
   * folder (`archive` relative to job.json's folder); `store`: pack the cache folder into out/ after a successful
   * build. Set by runCompileDriver from its `inductorCache` option.
   */
  inductorCache?: { store: boolean; restore?: { archive: string; sha256: string } };
  /**
   * A cross recipe's installed toolchain (kiln_driver/cross.py), as the sandbox shows it: the target architecture's
   * torch (`site`), the sysroot qemu runs it in, its python, qemu and that torch's version. Read-only in the view.
   */
  crossToolchain?: { root: string; site: string; sysroot: string; python: string; qemu: string; torch: string };
}

export type DriverPhase = 'loading' | 'compiling' | 'isa_check' | 'packaging' | 'verifying' | 'timing' | 'done';

/** A phase starting (the driver's `phase` event). */
export interface DriverProgress {
  phase: DriverPhase | (string & {});
  message: string;
  elapsedS: number;
  /** When it started by the build host's clock, in seconds since the epoch (drivers before tracing: absent). */
  at?: number;
  /** The traceparent of the job, echoed. */
  traceparent?: string;
}

/** A phase ending (`phase_end`): the next one started, or the driver is exiting (`ok` false: it failed in it). */
export interface DriverPhaseEnd {
  phase: string;
  at: number;
  ok: boolean;
  errorCode?: string;
  traceparent?: string;
}

/** The build's model: a file to place in the job folder, or a writer that puts it there (the build's download). */
export type DriverModelSource = { file: string } | { write: (dest: string) => Promise<void> };

/**
 * A weights-only update's donor code part: `write` puts it (verified) at the path it is given; `sha256` and
 * `cacheKey` go into the job. A donor that cannot be written is left out (the build is then a full one).
 */
export interface DriverCodeDonor {
  sha256: string;
  cacheKey: string;
  write: (dest: string) => Promise<void>;
}

/** The donor code part's name in the job folder (job.json's `codeDonor.codePart`). */
export const DONOR_CODE_FILE = 'donor-code.zip';

/**
 * The build's inductor cache scope: `restore` (when the scope has a cache) puts the archive, verified, at the path it
 * is given; `store` asks the driver to pack its cache for the next build. An archive that cannot be written is left
 * out (the build runs without it).
 */
export interface DriverInductorCache {
  store: boolean;
  restore?: { sha256: string; write: (dest: string) => Promise<void> };
}

/** The restored cache's name in the job folder, and the packed cache's in out/ (kiln_driver/inductor_cache.py). */
export const INDUCTOR_CACHE_FILE = 'inductor-cache.zip';
/** The largest packed cache the worker uploads (the driver packs none larger). */
const MAX_INDUCTOR_CACHE_BYTES = 2 * 1024 ** 3 + 64 * 1024 ** 2;

export interface RunCompileDriverOptions extends JobSandboxSettings {
  driverModule?: 'kiln_driver';
  model: DriverModelSource;
  codeDonor?: DriverCodeDonor;
  inductorCache?: DriverInductorCache;
  /** The job; its `sandbox` field is filled here from what the sandbox will enforce. */
  job: Omit<DriverJob, 'sandbox'> & { sandbox?: Record<string, unknown> };
  signal?: AbortSignal;
  onProgress?: (p: DriverProgress) => void;
  onPhaseEnd?: (e: DriverPhaseEnd) => void;
  /** Every line the driver writes to stderr (its readable log), as it comes. */
  onLogLine?: (line: string) => void;
}

interface OutcomeBase {
  /** The build log: the driver's stderr (tail) and a closing line saying how it ended. */
  log: string;
  jobDir: string;
  /** The job's model file (in jobDir; gone after cleanup): a second run of the same job may place it again. */
  modelPath: string;
  /** What the sandbox enforced, null when the driver never started. */
  sandbox: SandboxRecord | null;
  durationMs: number;
  /** Removes the job folder; call it once the parts are uploaded (idempotent). */
  cleanup: () => Promise<void>;
}

export interface DriverSuccess extends OutcomeBase {
  ok: true;
  manifest: ArtifactManifest;
  /** Folder holding each part as `<sha256>` (verified: size and hash match the manifest). */
  partsDir: string;
  /**
   * The inductor cache the driver packed (its manifest's inductorCache.stored), a regular file verified by size and
   * sha256; null when there is none to upload (the log says why when one was claimed).
   */
  inductorCache: { path: string; sha256: string; size: number } | null;
}

export interface DriverFailure extends OutcomeBase {
  ok: false;
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
  retryable: boolean;
}

export type DriverOutcome = DriverSuccess | DriverFailure;

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_ERROR_JSON_BYTES = 1024 * 1024;
const MAX_MESSAGE_CHARS = 4000;
/** Prefix of every build-log line of a build that ran without the full sandbox (KILN_SANDBOX=insecure-local). */
export const INSECURE_LOG_PREFIX = '[kiln:INSECURE-SANDBOX] ';

export async function runCompileDriver(opts: RunCompileDriverOptions): Promise<DriverOutcome> {
  const started = Date.now();
  let folder: JobFolder | null = null;
  const cleanup = async (): Promise<void> => {
    await folder?.remove();
  };
  const base = (log: string, sandbox: SandboxRecord | null): OutcomeBase => ({
    log: scrubHostPaths(sandbox?.mode === 'insecure-local' ? markInsecure(log) : log, hostPaths(opts, folder)),
    jobDir: folder?.dir ?? '',
    modelPath: folder?.modelPath ?? '',
    sandbox,
    durationMs: Date.now() - started,
    cleanup,
  });

  let request: Awaited<ReturnType<typeof jobSandboxRequest>>;
  // Lines the worker adds before the driver's own log (a donor that could not be used).
  const prepLog: string[] = [];
  try {
    folder = await createJobFolder(opts.workRoot);
    if ('file' in opts.model) await placeModelFile(opts.model.file, folder.modelPath);
    else {
      await opts.model.write(folder.modelPath);
      await chmod(folder.modelPath, 0o444);
    }
    let codeDonor: DriverJob['codeDonor'];
    const donorPath = path.join(folder.dir, DONOR_CODE_FILE);
    if (opts.codeDonor) {
      try {
        await opts.codeDonor.write(donorPath);
        await chmod(donorPath, 0o444);
        codeDonor = { codePart: DONOR_CODE_FILE, sha256: opts.codeDonor.sha256, cacheKey: opts.codeDonor.cacheKey };
      } catch (err) {
        // Only an optimisation: the build goes on in full.
        prepLog.push(`[kiln] code donor ${opts.codeDonor.sha256.slice(0, 12)} not used: ${(err as Error).message}`);
        await rm(donorPath, { force: true });
      }
    }
    let inductorCache: DriverJob['inductorCache'];
    const cachePath = path.join(folder.dir, INDUCTOR_CACHE_FILE);
    if (opts.inductorCache) {
      inductorCache = { store: opts.inductorCache.store };
      const offered = opts.inductorCache.restore;
      if (offered) {
        try {
          await offered.write(cachePath);
          await chmod(cachePath, 0o444);
          inductorCache.restore = { archive: INDUCTOR_CACHE_FILE, sha256: offered.sha256 };
        } catch (err) {
          // Only an optimisation: the build runs without it.
          prepLog.push(`[kiln] inductor cache ${offered.sha256.slice(0, 12)} not used: ${(err as Error).message}`);
          await rm(cachePath, { force: true });
        }
      }
    }
    request = await jobSandboxRequest(
      opts,
      folder,
      [
        '-m',
        opts.driverModule ?? 'kiln_driver',
        'build',
        '--model',
        folder.modelPath,
        '--job',
        folder.jobPath,
        '--out',
        folder.outDir,
      ],
      [...(codeDonor ? [donorPath] : []), ...(inductorCache?.restore ? [cachePath] : [])],
    );
    const planned = planSandbox(request, request.host).record;
    const job: DriverJob = {
      ...opts.job,
      ...(codeDonor ? { codeDonor } : {}),
      ...(inductorCache ? { inductorCache } : {}),
      sandbox: planned as unknown as Record<string, unknown>,
    };
    await writeFile(folder.jobPath, `${JSON.stringify(job, null, 2)}\n`, { mode: 0o444 });
  } catch (err) {
    if (err instanceof SandboxUnavailableError) {
      return {
        ok: false,
        code: ErrorCode.SANDBOX_UNAVAILABLE,
        message: err.message,
        details: { missing: err.missing },
        retryable: true,
        ...base(`[kiln] ${err.message}: nothing ran\n`, null),
      };
    }
    return {
      ok: false,
      code: ErrorCode.DRIVER_CRASHED,
      message: `could not prepare the build: ${(err as Error).message}`,
      retryable: true,
      ...base(`[kiln] could not prepare the build: ${(err as Error).message}\n`, null),
    };
  }

  const strayStdout: string[] = [];
  const insecure = request.insecureLocal === true;
  let result: SandboxResult;
  try {
    result = await runSandboxed({
      ...request,
      signal: opts.signal,
      onStdoutLine: (line) => {
        const progress = parseProgress(line);
        const end = progress ? null : parsePhaseEnd(line);
        if (progress) opts.onProgress?.(progress);
        else if (end) opts.onPhaseEnd?.(end);
        else if (line.trim() && strayStdout.length < 200) strayStdout.push(line);
      },
      onStderrLine: opts.onLogLine && ((line) => opts.onLogLine!(insecure ? `${INSECURE_LOG_PREFIX}${line}` : line)),
    });
  } catch (err) {
    return {
      ok: false,
      code: err instanceof SandboxUnavailableError ? ErrorCode.SANDBOX_UNAVAILABLE : ErrorCode.DRIVER_CRASHED,
      message: `could not start the sandbox: ${(err as Error).message}`,
      retryable: true,
      ...base(`[kiln] could not start the sandbox: ${(err as Error).message}\n`, null),
    };
  }

  const outcome = await classify(result, opts, folder.outDir);
  const log = prepLog.map((line) => `${line}\n`).join('') + buildLog(result, strayStdout, outcome);
  if (outcome.ok) {
    // The worker, not the driver, is the authority on what the sandbox enforced.
    outcome.manifest.build = {
      ...outcome.manifest.build,
      sandbox: result.record as unknown as ArtifactManifest['build']['sandbox'],
    };
    const cache = await storedInductorCache(outcome.manifest, folder.outDir);
    const cacheLog = cache.note ? `[kiln] ${cache.note}\n` : '';
    return {
      ok: true,
      manifest: outcome.manifest,
      partsDir: outcome.partsDir,
      inductorCache: cache.file,
      ...base(log + cacheLog, result.record),
    };
  }
  return {
    ok: false,
    code: outcome.code,
    message: scrubHostPaths(outcome.message, hostPaths(opts, folder)),
    ...(outcome.details ? { details: outcome.details } : {}),
    retryable: outcome.retryable,
    ...base(log, result.record),
  };
}

/**
 * Where this host keeps things, longest first, and the names the tenant reads instead. A build log is shown to the
 * tenant: it should tell what happened in the job, not how the build host is laid out.
 */
function hostPaths(opts: RunCompileDriverOptions, folder: JobFolder | null): [string, string][] {
  const venv = path.dirname(path.dirname(path.resolve(opts.pythonPath)));
  const named: [string, string][] = [
    ...(folder ? ([[folder.dir, '<job>']] as [string, string][]) : []),
    [venv, '<venv>'],
    [path.resolve(opts.workRoot), '<work>'],
    [process.cwd(), '<kiln>'],
  ];
  return named.filter(([p]) => p.length > 1).sort((a, b) => b[0].length - a[0].length);
}

/** Replaces each host path (as a whole path prefix) by its name. */
export function scrubHostPaths(text: string, paths: [string, string][]): string {
  let out = text;
  for (const [hostPath, name] of paths) {
    out = out.replace(new RegExp(`${escapeRegExp(hostPath)}(?![\\w.-])`, 'g'), name);
  }
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function markInsecure(log: string): string {
  return log
    .split('\n')
    .map((line, i, all) => (i === all.length - 1 && line === '' ? '' : `${INSECURE_LOG_PREFIX}${line}`))
    .join('\n');
}

/** A JSON progress line of the driver, or null for anything else. */
export function parseProgress(line: string): DriverProgress | null {
  const obj = driverEvent(line, 'phase');
  if (!obj) return null;
  return {
    phase: obj.phase as string,
    message: typeof obj.message === 'string' ? obj.message : '',
    elapsedS: typeof obj.elapsedS === 'number' ? obj.elapsedS : 0,
    ...(typeof obj.at === 'number' && Number.isFinite(obj.at) ? { at: obj.at } : {}),
    ...(typeof obj.traceparent === 'string' ? { traceparent: obj.traceparent } : {}),
  };
}

/** A `phase_end` line of the driver, or null for anything else (one without a time included). */
export function parsePhaseEnd(line: string): DriverPhaseEnd | null {
  const obj = driverEvent(line, 'phase_end');
  if (!obj || typeof obj.at !== 'number' || !Number.isFinite(obj.at)) return null;
  return {
    phase: obj.phase as string,
    at: obj.at,
    ok: obj.ok === true,
    ...(typeof obj.errorCode === 'string' ? { errorCode: obj.errorCode.slice(0, 100) } : {}),
    ...(typeof obj.traceparent === 'string' ? { traceparent: obj.traceparent } : {}),
  };
}

/** The driver's JSON event of this kind, with a string `phase`; null for anything else. */
function driverEvent(line: string, event: 'phase' | 'phase_end'): Record<string, unknown> | null {
  if (!line.startsWith('{')) return null;
  try {
    const obj = JSON.parse(line) as Record<string, unknown>;
    return isObject(obj) && obj.event === event && typeof obj.phase === 'string' ? obj : null;
  } catch {
    return null;
  }
}

type Classified =
  | { ok: true; manifest: ArtifactManifest; partsDir: string }
  | { ok: false; code: ErrorCode; message: string; details?: Record<string, unknown>; retryable: boolean };

async function classify(result: SandboxResult, opts: RunCompileDriverOptions, outDir: string): Promise<Classified> {
  if (result.cancelled)
    return { ok: false, code: ErrorCode.CANCELLED, message: 'the build was cancelled', retryable: true };
  if (result.timedOut) {
    return {
      ok: false,
      code: ErrorCode.COMPILE_TIMEOUT,
      message: `the compile did not finish within ${formatSeconds(opts.timeoutMs)}`,
      details: { timeoutMs: opts.timeoutMs },
      retryable: false,
    };
  }
  if (result.exitCode === 0) {
    try {
      const manifest = await readManifest(outDir, opts.job);
      return { ok: true, manifest, partsDir: path.join(outDir, 'parts') };
    } catch (err) {
      return {
        ok: false,
        code: ErrorCode.DRIVER_CRASHED,
        message: `the driver exited successfully but its output is unusable: ${(err as Error).message}`,
        retryable: true,
      };
    }
  }
  if (result.oomKilled) {
    return {
      ok: false,
      code: ErrorCode.COMPILE_OOM,
      message: `the compile exceeded its memory limit of ${formatBytes(opts.memoryBytes)}`,
      details: { memoryBytes: opts.memoryBytes, peakBytes: result.memoryPeakBytes },
      retryable: false,
    };
  }

  let reported: { code: ErrorCode; message: string; details: Record<string, unknown> } | null = null;
  let unreadable: string | null = null;
  try {
    reported = await readErrorJson(outDir);
  } catch (err) {
    unreadable = (err as Error).message;
  }
  // Exit code 3 is the driver's "deterministic failure, do not retry".
  if (result.exitCode === 3 && reported) return { ok: false, ...reported, retryable: false };
  if (reported) return { ok: false, ...reported, retryable: true };

  const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
  const last = lastLines(result.stderrTail, 1);
  return {
    ok: false,
    code: ErrorCode.DRIVER_CRASHED,
    message: `the compile driver ${how}${last ? `: ${last}` : ''}`.slice(0, MAX_MESSAGE_CHARS),
    details: {
      exitCode: result.exitCode,
      signal: result.signal,
      ...(unreadable ? { errorJson: unreadable } : {}),
    },
    retryable: true,
  };
}

/**
 * Reads a file written by the sandboxed driver: never through a symlink (it could point at any file the
 * worker may read), only a regular file, at most `maxBytes`. Null when it does not exist.
 */
async function readUntrustedFile(file: string, maxBytes: number): Promise<Buffer | null> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new Error(`${path.basename(file)} is a symlink`);
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new Error(`${path.basename(file)} is not a regular file`);
    if (st.size > maxBytes) throw new Error(`${path.basename(file)} is larger than ${maxBytes} bytes`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

async function readErrorJson(
  outDir: string,
): Promise<{ code: ErrorCode; message: string; details: Record<string, unknown> } | null> {
  const raw = await readUntrustedFile(path.join(outDir, 'error.json'), MAX_ERROR_JSON_BYTES);
  if (!raw) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new Error('error.json is not JSON');
  }
  if (!isObject(parsed) || typeof parsed.code !== 'string') throw new Error('error.json has no code');
  const details = isObject(parsed.details) ? parsed.details : {};
  const message = (typeof parsed.message === 'string' ? parsed.message : parsed.code).slice(0, MAX_MESSAGE_CHARS);
  // The driver may report any of the contract's codes (libs/contracts/src/error-codes.json marks its own).
  if (!isErrorCode(parsed.code)) {
    return {
      code: ErrorCode.DRIVER_CRASHED,
      message: `the driver reported an unknown error code ${parsed.code.slice(0, 100)}: ${message}`,
      details: { ...details, driverCode: parsed.code.slice(0, 100) },
    };
  }
  return { code: parsed.code, message, details };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The manifest, checked far enough that the caller can upload it: it is about this job (checkManifest), and
 * every part it lists is a regular file in out/parts named by its sha256, with that size and that hash (re-computed).
 */
async function readManifest(outDir: string, job: RunCompileDriverOptions['job']): Promise<ArtifactManifest> {
  const raw = await readUntrustedFile(path.join(outDir, 'manifest.json'), MAX_MANIFEST_BYTES);
  if (!raw) throw new Error('no out/manifest.json');
  let m: unknown;
  try {
    m = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new Error('manifest.json is not JSON');
  }
  const manifest = checkManifest(m, job);

  const partsDir = path.join(outDir, 'parts');
  const dirStat = await lstat(partsDir).catch(() => null);
  if (!dirStat?.isDirectory()) throw new Error('out/parts is not a directory');
  for (const { sha256, size } of manifest.parts) {
    const actual = await hashUntrustedFile(path.join(partsDir, sha256));
    if (actual.size !== size) throw new Error(`part ${sha256}: ${actual.size} bytes on disk, manifest says ${size}`);
    if (actual.sha256 !== sha256) throw new Error(`part ${sha256}: content hashes to ${actual.sha256}`);
  }
  return manifest;
}

/**
 * The packed inductor cache the manifest names, checked like a part (a regular file, never through a link: the
 * sandbox wrote the out folder, a link could name any file the worker may read), or null with the reason.
 */
async function storedInductorCache(
  manifest: ArtifactManifest,
  outDir: string,
): Promise<{ file: DriverSuccess['inductorCache']; note?: string }> {
  const stored = manifest.inductorCache?.stored;
  if (!stored) return { file: null };
  const file = path.join(outDir, INDUCTOR_CACHE_FILE);
  try {
    if (stored.bytes > MAX_INDUCTOR_CACHE_BYTES) throw new Error(`${stored.bytes} bytes`);
    const actual = await hashUntrustedFile(file);
    if (actual.size !== stored.bytes || actual.sha256 !== stored.sha256) {
      throw new Error(`${actual.size} bytes hashing to ${actual.sha256} on disk`);
    }
    return { file: { path: file, sha256: stored.sha256, size: stored.bytes } };
  } catch (err) {
    return { file: null, note: `inductor cache ${stored.sha256.slice(0, 12)} not stored: ${(err as Error).message}` };
  }
}

async function hashUntrustedFile(file: string): Promise<{ sha256: string; size: number }> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`part ${path.basename(file)} is missing`);
    if (code === 'ELOOP') throw new Error(`part ${path.basename(file)} is a symlink`);
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new Error(`part ${path.basename(file)} is not a regular file`);
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of handle.createReadStream({ autoClose: false, highWaterMark: 1 << 20 })) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { sha256: hash.digest('hex'), size };
  } finally {
    await handle.close();
  }
}

function buildLog(result: SandboxResult, strayStdout: string[], outcome: Classified): string {
  const a = result.record;
  const how = result.timedOut
    ? `timed out after ${formatSeconds(a.timeoutMs)}`
    : result.cancelled
      ? 'was cancelled'
      : result.signal
        ? `was killed by ${result.signal}${result.oomKilled ? ' (memory limit)' : ''}`
        : `exited with code ${result.exitCode}`;
  const memory =
    a.memoryLimit === 'none'
      ? 'no memory limit'
      : `memory ${formatBytes(a.memoryBytes ?? 0)} (${a.memoryLimit})` +
        (result.memoryPeakBytes !== null ? `, peak ${formatBytes(result.memoryPeakBytes)}` : '');
  const lines = [
    result.stderrTail.replace(/\n?$/, '\n'),
    ...(strayStdout.length ? [`[kiln] other output on stdout:\n${strayStdout.join('\n').slice(-8192)}\n`] : []),
    `[kiln] the driver ${how} after ${formatSeconds(result.durationMs)}; ` +
      `sandbox ${a.mode} (${a.tool ?? 'no bubblewrap'}): network ${a.network}, files ${a.filesystem}, ` +
      `user ${a.user}, ${memory}, pids ${a.pidsLimit ?? 'unlimited'}\n`,
    ...(a.missing.length
      ? [`[kiln] INSECURE: built without ${a.missing.map((m) => `${m.wall} (${m.why})`).join(', ')}\n`]
      : []),
    outcome.ok ? '' : `[kiln] ${outcome.code}: ${outcome.message}\n`,
  ];
  return lines.join('');
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join('\n').trim();
}

function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

function formatBytes(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(1)} GiB`;
  return `${Math.round(bytes / (1 << 20))} MiB`;
}
