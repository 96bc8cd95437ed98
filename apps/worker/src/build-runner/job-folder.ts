import { chmod, copyFile, link, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { SandboxRequest } from './sandbox-plan.js';
import { probeSandboxHost, type SandboxHost } from './sandbox-probe.js';
import { etcView, pythonView } from './sandbox-view.js';

/**
 * One build's folder and the sandbox request that runs the driver in it. Both the compile (driver-runner.ts) and
 * the worker's self-test (sandbox-self-test.ts) go through here, so the self-test checks the sandbox exactly as
 * builds get it.
 *
 *   workRoot/            0711 root: the sandbox user may pass through, not list
 *   └ job-XXXXXX/        0711 root
 *     ├ model.pt2        0444: the build's own model, downloaded straight here (never a shared downloads folder)
 *     ├ job.json         0444: the job, including the sandbox that applies
 *     ├ donor-code.zip   0444: a weights-only update's donor code part (only when the job names one)
 *     ├ inductor-cache.zip 0444: the latest inductor cache of the build's scope (only when the job names one)
 *     ├ .sandbox/        the job's /etc/passwd and /etc/group
 *     └ tmp/ cache/ home/ out/   0700, owned by the sandbox user: the only folders the job may write
 *
 * Inside the sandbox the job sees exactly: model.pt2 and job.json (read-only), its four folders, the toolchain
 * (read-only), and nothing else of the host.
 */

/** What the build activity configures for every job (compile-job-settings.ts builds it from KilnConfig). */
export interface JobSandboxSettings {
  /** The Python that runs `-m kiln_driver` (KILN_PYTHON). */
  pythonPath: string;
  /** Parent of the job folders. */
  workRoot: string;
  timeoutMs: number;
  memoryBytes: number;
  pidsLimit?: number;
  cpus?: number;
  killGraceMs?: number;
  /** Extra environment (the timing lock, the GPU a CUDA build holds, PYTHONPATH in tests). */
  env?: Record<string, string>;
  /** Extra host paths the job may read (the host timing lock). */
  readOnly?: string[];
  /** Device nodes (a CUDA build's /dev/nvidia*). */
  devices?: string[];
  /** Host paths that must never be in the view (keys, data, `.env`): a view that would show one is refused. */
  protectedPaths?: string[];
  /** KILN_SANDBOX=insecure-local: run even when a wall is missing, and record it. */
  insecureLocal?: boolean;
  /** The host as probed (default: probeSandboxHost()). */
  host?: SandboxHost;
}

export interface JobFolder {
  dir: string;
  modelPath: string;
  jobPath: string;
  outDir: string;
  /** The folders the job may write. */
  writable: string[];
  /** Where the driver compiles (SandboxRequest.buildDir): the job sees it at a fixed path. */
  buildDir: string;
  /** Removes the folder (idempotent). */
  remove: () => Promise<void>;
}

// build: the driver's work folder and inductor cache (shown at a fixed path: SandboxRequest.buildDir).
const SUBFOLDERS = ['tmp', 'home', 'out', 'build'] as const;
const OWNER_FILE = '.worker-pid';

/**
 * Removes job folders whose worker is gone (killed mid-build: its model copy and outputs would stay on disk
 * otherwise). A folder is another live worker's when its owner file names a running process of this host. A folder
 * another host made (a work folder shared between hosts, which it should not be: docs/operations.md, "Scaling out")
 * is left alone, since its pid says nothing here. Returns the names removed.
 */
export async function sweepStaleJobFolders(workRoot: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(workRoot).catch(() => [] as string[])) {
    if (!name.startsWith('job-')) continue;
    const dir = path.join(workRoot, name);
    // `<pid>@<hostname>`; folders of older workers hold the pid alone (this host's).
    const owner = (await readFile(path.join(dir, OWNER_FILE), 'utf8').catch(() => '')).trim();
    const [pidText, host] = owner.split('@');
    if (host !== undefined && host !== os.hostname()) continue;
    const pid = Number(pidText);
    if (Number.isSafeInteger(pid) && pid > 0 && isAlive(pid)) continue;
    await rm(dir, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function createJobFolder(workRoot: string): Promise<JobFolder> {
  const root = path.resolve(workRoot);
  await mkdir(root, { recursive: true, mode: 0o711 });
  await chmod(root, 0o711);
  const dir = await mkdtemp(path.join(root, 'job-'));
  await chmod(dir, 0o711);
  // Whose job this is: a folder whose worker died (kill -9) is removed by the next worker's sweep.
  await writeFile(path.join(dir, OWNER_FILE), `${process.pid}@${os.hostname()}\n`, { mode: 0o600 });
  return {
    dir,
    modelPath: path.join(dir, 'model.pt2'),
    jobPath: path.join(dir, 'job.json'),
    outDir: path.join(dir, 'out'),
    writable: SUBFOLDERS.map((s) => path.join(dir, s)),
    buildDir: path.join(dir, 'build'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Hard link when the sandbox user may read the original anyway, else a copy; read-only either way. */
export async function placeModelFile(source: string, dest: string): Promise<void> {
  const st = await stat(source);
  if (!st.isFile()) throw new Error(`${source} is not a regular file`);
  if (st.mode & 0o004) {
    try {
      await link(source, dest);
      return;
    } catch {
      // another file system (EXDEV) or no hard links: copy
    }
  }
  await copyFile(source, dest);
  await chmod(dest, 0o444);
}

/**
 * The sandbox request that runs `python <pythonArgs>` in `folder` with `settings`. `extraInputs`: other files of the
 * job folder the job may read (a weights-only update's donor code part), read-only like the model.
 */
export async function jobSandboxRequest(
  settings: JobSandboxSettings,
  folder: JobFolder,
  pythonArgs: string[],
  extraInputs: string[] = [],
): Promise<SandboxRequest & { host: SandboxHost }> {
  const host = settings.host ?? (await probeSandboxHost());
  const env: Record<string, string> = {
    TMPDIR: path.join(folder.dir, 'tmp'),
    HOME: path.join(folder.dir, 'home'),
    PYTHONNOUSERSITE: '1',
    // -m must not import modules from the job folder (cwd) before the installed driver.
    PYTHONSAFEPATH: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONUNBUFFERED: '1',
    ...settings.env,
  };
  const inputs = [folder.modelPath, folder.jobPath, ...extraInputs];
  return {
    argv: [settings.pythonPath, ...pythonArgs],
    cwd: folder.dir,
    jobDir: folder.dir,
    env,
    timeoutMs: settings.timeoutMs,
    memoryBytes: settings.memoryBytes,
    pidsLimit: settings.pidsLimit,
    cpus: settings.cpus,
    killGraceMs: settings.killGraceMs,
    readOnly: [
      ...(await pythonView(settings.pythonPath, env)),
      ...(await etcView()),
      ...inputs,
      ...(settings.readOnly ?? []),
    ],
    writable: folder.writable,
    buildDir: folder.buildDir,
    devices: settings.devices,
    protectedPaths: settings.protectedPaths,
    insecureLocal: settings.insecureLocal,
    host,
  };
}
