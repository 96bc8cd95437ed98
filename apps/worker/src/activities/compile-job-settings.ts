import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { KilnConfig } from '@kiln/config';
import type { JobSandboxSettings } from '../build-runner/job-folder.js';
import type { SandboxHost } from '../build-runner/sandbox-probe.js';
import { type GpuLease, gpuEnvironment } from '../build-runner/gpu-slots.js';

/**
 * The ONE description of how a build job runs on this worker: interpreter, job folders, limits, what it may read
 * besides its own folder, what must never be in its view, and the sandbox mode. The build activity runs every
 * compile with it, the worker's sandbox self-test checks exactly it before any build queue is polled, and the
 * attack tests (test/security/) run hostile jobs with it.
 */
export function compileJobSettings(
  config: KilnConfig,
  extra: {
    timingLock: string;
    host?: SandboxHost;
    gpu?: GpuLease | null;
    gpuDevices?: string[];
    /** A cross build's toolchain folder (kiln_driver/cross.py): shown read-only, like the Python toolchain. */
    crossToolchainRoot?: string;
  },
): JobSandboxSettings {
  return {
    pythonPath: config.resolvePath(config.KILN_PYTHON),
    workRoot: path.join(config.workDir, 'jobs'),
    timeoutMs: config.KILN_BUILD_TIMEOUT_S * 1000,
    memoryBytes: config.KILN_BUILD_MEMORY_MB * 1024 * 1024,
    pidsLimit: config.KILN_BUILD_PIDS_LIMIT,
    env: { KILN_TIMING_LOCK: extra.timingLock, ...(extra.gpu ? gpuEnvironment(extra.gpu) : {}) },
    // The host-wide timing lock (python/driver/kiln_driver/host_lock.py): the only host file a job shares.
    readOnly: [extra.timingLock, ...(extra.crossToolchainRoot ? [extra.crossToolchainRoot] : [])],
    devices: extra.gpu ? (extra.gpuDevices ?? []) : [],
    protectedPaths: protectedPaths(config),
    insecureLocal: config.KILN_SANDBOX === 'insecure-local',
    host: extra.host,
  };
}

/**
 * What no job may ever see (the view is an allowlist that shows none of these; a toolchain folder that contains
 * one is refused, and the self-test checks each is absent inside): the signing key, the local databases and logs,
 * the repository's `.env`, other users' homes, and the PostgreSQL socket (trust auth locally).
 */
export function protectedPaths(config: KilnConfig): string[] {
  const home = config.resolvePath(config.KILN_HOME);
  return [
    config.resolvePath(config.KILN_SIGNING_KEY_FILE),
    path.join(home, 'keys'),
    path.join(home, 'data'),
    path.join(home, 'logs'),
    path.join(home, 'run'),
    path.join(config.workDir, 'downloads'),
    config.resolvePath('.env'),
    config.resolvePath('.git'),
    '/root',
    '/home',
    '/run/postgresql',
    '/var/run/postgresql',
  ];
}

/**
 * The host lock of kiln_driver (host_lock.py): compiles hold it shared and timing holds it exclusive, each wait
 * bounded, so a build measures its artifact while no other build on this host compiles. Readable by the job.
 */
export async function ensureTimingLock(config: KilnConfig): Promise<string> {
  const dir = path.join(config.workDir, 'locks');
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const file = path.join(dir, 'timing.lock');
  await writeFile(file, '', { flag: 'a', mode: 0o644 });
  return file;
}

/** Build-time timing protocol: best of `runs`, each lock wait and the whole measurement bounded. */
export const BUILD_TIMING = { warmup: 3, runs: 20, maxSeconds: 60, lockWaitSeconds: 120 } as const;
