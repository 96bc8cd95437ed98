import { randomBytes } from 'node:crypto';
import { access, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Per-job control groups: a memory limit the kernel enforces on the whole process tree (with an OOM kill we
 * can recognise afterwards), a pids limit against fork bombs and an optional CPU quota. cgroup v1 (separate
 * memory/pids/cpu hierarchies, like this dev machine) and v2 (one unified tree) are both supported.
 *
 * Job cgroups are created BELOW the worker's own cgroup (or below an explicitly delegated parent), never at
 * the root of a hierarchy: limits set on the worker (by systemd, a container runtime, …) keep applying
 * to its jobs.
 */
export interface CgroupV1Layout {
  version: 1;
  /** Parent folders (the worker's own cgroup) of each controller, null when missing or not writable. */
  memory: string | null;
  pids: string | null;
  cpu: string | null;
}

export interface CgroupV2Layout {
  version: 2;
  /** Parent folder job cgroups are created in. */
  parent: string;
  /** Controllers enabled for the parent's children (cgroup.subtree_control). */
  controllers: string[];
}

export type CgroupLayout = CgroupV1Layout | CgroupV2Layout;

export interface CgroupLimits {
  memoryBytes: number;
  pidsLimit: number | null;
  /** CPU quota in cores (1.5 = one and a half cores), null = no quota. */
  cpus: number | null;
}

export interface JobCgroup {
  version: 1 | 2;
  /** Every folder created for the job (one per v1 hierarchy, one for v2). */
  dirs: string[];
  memoryDir: string | null;
  pidsDir: string | null;
  cpuDir: string | null;
  /** Files the sandbox wrapper writes its pid into before exec'ing the untrusted command. */
  procsFiles: string[];
  /** Limits actually written. */
  enforced: { memoryBytes: number | null; pidsLimit: number | null; cpus: number | null };
}

export interface CgroupStats {
  /** Processes the kernel OOM-killed in this cgroup because of its memory limit. */
  oomKills: number;
  /** Times memory usage hit the limit (v1 memory.failcnt, v2 memory.events "max"). */
  limitHits: number;
  /** Peak memory use of the job, when the kernel reports it. */
  peakBytes: number | null;
  /** Forks the pids limit refused (pids.events "max"). */
  pidsRefused: number;
  /** CPU periods in which the job was throttled by its CPU quota (cpu.stat nr_throttled). */
  cpuThrottled: number;
}

/** One line of /proc/self/cgroup: `hierarchy-id:controllers:path`. */
export interface ProcCgroupEntry {
  id: number;
  controllers: string[];
  path: string;
}

export function parseProcCgroup(text: string): ProcCgroupEntry[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const first = line.indexOf(':');
      const second = line.indexOf(':', first + 1);
      return {
        id: Number(line.slice(0, first)),
        controllers: line
          .slice(first + 1, second)
          .split(',')
          .filter(Boolean),
        path: line.slice(second + 1),
      };
    });
}

export interface CgroupMount {
  version: 1 | 2;
  mountPoint: string;
  /** The folder of the hierarchy this mount shows (not "/" inside a cgroup namespace or a bind mount). */
  root: string;
  /** v1: controllers of the hierarchy (from the super options); v2: empty. */
  controllers: string[];
}

/** cgroup mounts from /proc/self/mountinfo (fields: id parent dev root mountpoint opts … - fstype source superopts). */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const [fstype, , superOpts = ''] = line.slice(sep + 3).split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const known = ['memory', 'pids', 'cpu', 'cpuacct', 'cpuset', 'blkio', 'io', 'devices', 'freezer', 'hugetlb'];
    mounts.push({
      version: fstype === 'cgroup2' ? 2 : 1,
      mountPoint: unescapeMountPath(left[4]),
      root: unescapeMountPath(left[3]),
      controllers: fstype === 'cgroup' ? superOpts.split(',').filter((o) => known.includes(o)) : [],
    });
  }
  return mounts;
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Where this process's cgroup of `controller` (v1) or its unified cgroup (v2) lives on disk. */
export function cgroupFolder(
  entries: readonly ProcCgroupEntry[],
  mounts: readonly CgroupMount[],
  controller: string | null,
): string | null {
  const entry =
    controller === null
      ? entries.find((e) => e.id === 0 && e.controllers.length === 0)
      : entries.find((e) => e.controllers.includes(controller));
  const mount =
    controller === null
      ? mounts.find((m) => m.version === 2)
      : mounts.find((m) => m.version === 1 && m.controllers.includes(controller));
  if (!entry || !mount) return null;
  // The path in /proc/self/cgroup is relative to the hierarchy's root; the mount may show a sub-folder of it.
  let rel = entry.path;
  if (mount.root !== '/' && (rel === mount.root || rel.startsWith(`${mount.root}/`)))
    rel = rel.slice(mount.root.length);
  return path.join(mount.mountPoint, rel).replace(/(.)\/+$/, '$1');
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

async function readText(p: string): Promise<string | null> {
  try {
    return await readFile(p, 'utf8');
  } catch {
    return null;
  }
}

/** Creates and removes a throw-away child with a limit written, to prove we may (read-only mounts, no root, …). */
async function canCreateChild(parent: string, limitFile: string, value: string): Promise<string | null> {
  const probe = path.join(parent, `kiln-probe-${process.pid}-${randomBytes(3).toString('hex')}`);
  try {
    await mkdir(probe);
  } catch (err) {
    return `cannot create a cgroup in ${parent}: ${(err as Error).message}`;
  }
  try {
    await writeFile(path.join(probe, limitFile), value);
    return null;
  } catch (err) {
    return `cannot write ${limitFile} in ${parent}: ${(err as Error).message}`;
  } finally {
    await rmdir(probe).catch(() => undefined);
  }
}

export interface CgroupProbeOptions {
  /** A delegated cgroup folder to create job cgroups in instead of the worker's own (v1 or v2). */
  parent?: string;
  procCgroupPath?: string;
  mountinfoPath?: string;
}

/** Finds a usable cgroup layout for job limits, and says why not when there is none. */
export async function probeCgroups(
  opts: CgroupProbeOptions = {},
): Promise<{ layout: CgroupLayout | null; notes: string[] }> {
  const notes: string[] = [];
  if (opts.parent) {
    const v2 = await exists(path.join(opts.parent, 'cgroup.controllers'));
    if (v2) return probeV2(opts.parent, notes);
    const memory = (await canCreateChild(opts.parent, 'memory.limit_in_bytes', String(1 << 30))) ? null : opts.parent;
    if (!memory) notes.push(`cgroup parent ${opts.parent} is neither a v2 cgroup nor a writable v1 memory cgroup`);
    return { layout: memory ? { version: 1, memory, pids: null, cpu: null } : null, notes };
  }

  const entries = parseProcCgroup((await readText(opts.procCgroupPath ?? '/proc/self/cgroup')) ?? '');
  const mounts = parseCgroupMounts((await readText(opts.mountinfoPath ?? '/proc/self/mountinfo')) ?? '');

  // Prefer v2 when the unified hierarchy has the memory controller for our children (pure v2 hosts);
  // in hybrid mode (this dev machine) the v2 tree has no memory controller and v1 is what works.
  const unified = cgroupFolder(entries, mounts, null);
  if (unified && (await readText(path.join(unified, 'cgroup.controllers')))?.split(/\s+/).includes('memory')) {
    const v2 = await probeV2(unified, notes);
    if (v2.layout) return v2;
  }

  const v1: CgroupV1Layout = { version: 1, memory: null, pids: null, cpu: null };
  const checks = [
    ['memory', 'memory.limit_in_bytes', String(1 << 30)],
    ['pids', 'pids.max', '1024'],
    ['cpu', 'cpu.cfs_quota_us', '-1'],
  ] as const;
  for (const [controller, file, value] of checks) {
    const folder = cgroupFolder(entries, mounts, controller);
    if (!folder) continue;
    const problem = await canCreateChild(folder, file, value);
    if (problem) notes.push(`cgroup v1 ${controller}: ${problem}`);
    else v1[controller] = folder;
  }
  if (v1.memory) return { layout: v1, notes };
  if (!unified && !mounts.some((m) => m.version === 1 && m.controllers.includes('memory'))) {
    notes.push('no cgroup memory controller is mounted');
  }
  return { layout: null, notes };
}

async function probeV2(parent: string, notes: string[]): Promise<{ layout: CgroupV2Layout | null; notes: string[] }> {
  const available = ((await readText(path.join(parent, 'cgroup.controllers'))) ?? '').split(/\s+/).filter(Boolean);
  const enabled = new Set(
    ((await readText(path.join(parent, 'cgroup.subtree_control'))) ?? '').split(/\s+/).filter(Boolean),
  );
  for (const controller of ['memory', 'pids', 'cpu']) {
    if (enabled.has(controller) || !available.includes(controller)) continue;
    try {
      await writeFile(path.join(parent, 'cgroup.subtree_control'), `+${controller}`);
      enabled.add(controller);
    } catch (err) {
      // EBUSY: v2's "no internal processes" rule: a cgroup holding processes (the worker itself) cannot
      // hand controllers to children. Run the worker in a leaf of a delegated cgroup and pass the parent.
      notes.push(`cgroup v2: cannot enable ${controller} for children of ${parent}: ${(err as Error).message}`);
    }
  }
  if (!enabled.has('memory')) {
    notes.push(
      `cgroup v2: memory controller not delegated to children of ${parent} ` +
        '(run the worker in a leaf of a delegated cgroup, e.g. systemd Delegate=yes, and pass its parent)',
    );
    return { layout: null, notes };
  }
  const problem = await canCreateChild(parent, 'memory.max', String(1 << 30));
  if (problem) {
    notes.push(`cgroup v2: ${problem}`);
    return { layout: null, notes };
  }
  return { layout: { version: 2, parent, controllers: [...enabled] }, notes };
}

async function writeLimit(dir: string, file: string, value: string, required: boolean): Promise<boolean> {
  try {
    await writeFile(path.join(dir, file), value);
    return true;
  } catch (err) {
    if (required) throw new Error(`cannot set ${file}=${value} in ${dir}: ${(err as Error).message}`);
    return false;
  }
}

/**
 * Creates the job's cgroup(s) with the limits written. A failure here throws: the capability probe said
 * cgroups work, so running the untrusted job without its memory limit would be a silent downgrade.
 */
export async function createJobCgroup(layout: CgroupLayout, name: string, limits: CgroupLimits): Promise<JobCgroup> {
  const job: JobCgroup = {
    version: layout.version,
    dirs: [],
    memoryDir: null,
    pidsDir: null,
    cpuDir: null,
    procsFiles: [],
    enforced: { memoryBytes: null, pidsLimit: null, cpus: null },
  };
  const make = async (parent: string): Promise<string> => {
    const dir = path.join(parent, name);
    await mkdir(dir);
    job.dirs.push(dir);
    job.procsFiles.push(path.join(dir, 'cgroup.procs'));
    return dir;
  };
  const quota = limits.cpus === null ? null : Math.max(1000, Math.round(limits.cpus * 100_000));
  try {
    if (layout.version === 1) {
      if (layout.memory) {
        const dir = (job.memoryDir = await make(layout.memory));
        await writeLimit(dir, 'memory.limit_in_bytes', String(limits.memoryBytes), true);
        // With swap accounting, memory+swap gets the same cap: a job must not dodge its limit by swapping.
        await writeLimit(dir, 'memory.memsw.limit_in_bytes', String(limits.memoryBytes), false);
        await writeLimit(dir, 'memory.swappiness', '0', false);
        job.enforced.memoryBytes = limits.memoryBytes;
      }
      if (layout.pids && limits.pidsLimit !== null) {
        const dir = (job.pidsDir = await make(layout.pids));
        await writeLimit(dir, 'pids.max', String(limits.pidsLimit), true);
        job.enforced.pidsLimit = limits.pidsLimit;
      }
      if (layout.cpu && quota !== null) {
        const dir = (job.cpuDir = await make(layout.cpu));
        await writeLimit(dir, 'cpu.cfs_period_us', '100000', true);
        await writeLimit(dir, 'cpu.cfs_quota_us', String(quota), true);
        job.enforced.cpus = quota / 100_000;
      }
    } else {
      const dir = await make(layout.parent);
      job.memoryDir = dir;
      await writeLimit(dir, 'memory.max', String(limits.memoryBytes), true);
      await writeLimit(dir, 'memory.swap.max', '0', false);
      // Kill the whole job on OOM, not just its largest process: a half-dead compile is no use.
      await writeLimit(dir, 'memory.oom.group', '1', false);
      job.enforced.memoryBytes = limits.memoryBytes;
      if (layout.controllers.includes('pids') && limits.pidsLimit !== null) {
        job.pidsDir = dir;
        await writeLimit(dir, 'pids.max', String(limits.pidsLimit), true);
        job.enforced.pidsLimit = limits.pidsLimit;
      }
      if (layout.controllers.includes('cpu') && quota !== null) {
        job.cpuDir = dir;
        await writeLimit(dir, 'cpu.max', `${quota} 100000`, true);
        job.enforced.cpus = quota / 100_000;
      }
    }
  } catch (err) {
    await removeJobCgroup(job);
    throw err;
  }
  return job;
}

function counter(text: string | null, key: string): number {
  const m = text ? new RegExp(`^${key}\\s+(\\d+)`, 'm').exec(text) : null;
  return m ? Number(m[1]) : 0;
}

export async function readJobCgroupStats(job: JobCgroup): Promise<CgroupStats> {
  const pidsRefused = job.pidsDir ? counter(await readText(path.join(job.pidsDir, 'pids.events')), 'max') : 0;
  const cpuThrottled = job.cpuDir ? counter(await readText(path.join(job.cpuDir, 'cpu.stat')), 'nr_throttled') : 0;
  if (!job.memoryDir) return { oomKills: 0, limitHits: 0, peakBytes: null, pidsRefused, cpuThrottled };
  if (job.version === 1) {
    const oomControl = await readText(path.join(job.memoryDir, 'memory.oom_control'));
    const failcnt = Number((await readText(path.join(job.memoryDir, 'memory.failcnt')))?.trim() ?? 0);
    const peak = (await readText(path.join(job.memoryDir, 'memory.max_usage_in_bytes')))?.trim();
    return {
      oomKills: counter(oomControl, 'oom_kill'),
      limitHits: failcnt || 0,
      peakBytes: peak ? Number(peak) : null,
      pidsRefused,
      cpuThrottled,
    };
  }
  const events = await readText(path.join(job.memoryDir, 'memory.events'));
  const peak = (await readText(path.join(job.memoryDir, 'memory.peak')))?.trim();
  return {
    oomKills: counter(events, 'oom_kill'),
    limitHits: counter(events, 'max'),
    peakBytes: peak ? Number(peak) : null,
    pidsRefused,
    cpuThrottled,
  };
}

/** Pids still in the job's cgroup(s). */
export async function jobCgroupPids(job: JobCgroup): Promise<number[]> {
  const pids = new Set<number>();
  for (const file of job.procsFiles) {
    for (const line of ((await readText(file)) ?? '').split('\n')) if (line.trim()) pids.add(Number(line));
  }
  return [...pids];
}

/** SIGKILLs whatever is left in the job's cgroups, including processes that escaped the process group. */
export async function killJobCgroup(job: JobCgroup): Promise<void> {
  for (let round = 0; round < 40; round++) {
    if (job.version === 2 && job.dirs[0] && round === 0) {
      await writeFile(path.join(job.dirs[0], 'cgroup.kill'), '1').catch(() => undefined); // Linux ≥ 5.14
    }
    const pids = await jobCgroupPids(job);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await sleep(25);
  }
}

/** Kills leftovers and removes the job's cgroup folders; returns the folders that could not be removed. */
export async function removeJobCgroup(job: JobCgroup): Promise<string[]> {
  await killJobCgroup(job);
  const left: string[] = [];
  for (const dir of [...job.dirs].reverse()) {
    let removed = false;
    for (let attempt = 0; attempt < 20 && !removed; attempt++) {
      try {
        await rmdir(dir);
        removed = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') removed = true;
        else await sleep(25); // EBUSY while the last killed task is being reaped
      }
    }
    if (!removed) left.push(dir);
  }
  return left;
}

/** Removes the (empty) cgroups left by jobs whose folders were swept (`kiln-<job folder>-<random>`); best effort. */
export async function removeStaleJobCgroups(layout: CgroupLayout | null, jobFolderNames: string[]): Promise<number> {
  if (!layout || jobFolderNames.length === 0) return 0;
  const parents = layout.version === 1 ? [layout.memory, layout.pids, layout.cpu] : [layout.parent];
  let removed = 0;
  for (const parent of parents.filter((p): p is string => p !== null)) {
    for (const entry of await readdir(parent).catch(() => [] as string[])) {
      if (!jobFolderNames.some((name) => entry.startsWith(`kiln-${name}-`))) continue;
      try {
        await rmdir(path.join(parent, entry));
        removed++;
      } catch {
        // still holds a process (or already gone): leave it
      }
    }
  }
  return removed;
}
