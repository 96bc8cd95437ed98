import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { capX86Flags, parseCpuinfoFlags, TARGETS, type TargetDefinition, x86LevelFromFlags } from '@kiln/targets';
import { createJobFolder, jobSandboxRequest, type JobSandboxSettings } from './job-folder.js';
import { findExecutable, SANDBOX_PATH } from './sandbox-probe.js';
import { runSandboxed } from './sandbox-run.js';

/**
 * What a build worker finds out about its host before it polls any queue: CPU (→ x86-64 level), arch,
 * the toolchain the sandboxed driver will use (torch of the worker's Python, C++ compilers on the
 * sandbox's PATH, glibc) and GPUs. `buildableTargets` turns that into the target queues this host
 * can serve: it must be able to BUILD and also RUN each artifact, since every artifact is loaded and
 * checked on its build host before it is published.
 */
export interface GpuInfo {
  name: string;
  /** "9.0", as nvidia-smi prints it. */
  computeCapability: string;
  driverVersion: string;
  /** nvidia-smi's index (PCI bus order): what CUDA_VISIBLE_DEVICES names with CUDA_DEVICE_ORDER=PCI_BUS_ID. */
  index: number;
}

export interface CompilerInfo {
  /** Absolute path the sandbox's PATH resolves the recipe's compiler name to; null when absent. */
  path: string | null;
  /** First line of `<cxx> --version`. */
  versionLine: string | null;
  /** Dotted version parsed from that line ("12.2.0"). */
  version: string | null;
}

export interface HostProbe {
  /** Node's platform name ("linux"). */
  os: string;
  /** Kernel-style machine name: "x86_64", "aarch64". */
  arch: string;
  cpuModel: string;
  cpuFlags: string[];
  /** x86-64 micro-architecture level (1–4) of the CPU, after KILN_X86_LEVEL_CAP; null on other architectures. */
  x86Level: 1 | 2 | 3 | 4 | null;
  /** The KILN_X86_LEVEL_CAP in force (the CPU may do more), null when none. */
  x86LevelCap: 1 | 2 | 3 | 4 | null;
  logicalCpus: number;
  toolchain: {
    pythonPath: string;
    /** sys.version of the worker's Python (first word), null when it did not start. */
    python: string | null;
    /** torch.__version__ ("2.13.0+cpu"), null when torch cannot be imported. */
    torch: string | null;
    /** Keyed by the compiler name a recipe pins (recipe.toolchain.cxx). */
    compilers: Record<string, CompilerInfo>;
    /** "2.36"; null when neither getconf nor ldd told. */
    glibc: string | null;
    /** The same Python as the sandboxed driver sees it (as nobody, no network); null when not checked. */
    sandboxed: SandboxedPythonCheck | null;
    /**
     * The cross toolchains installed on this host (`scripts/setup.sh --cross`), by name (a cross recipe's
     * `toolchainName`): null when absent or incomplete (the reason is in `problems`).
     */
    cross: Record<string, CrossToolchainInfo | null>;
  };
  gpus: GpuInfo[];
  /** What the probe could not find out, and why (logged by the worker; never fatal by itself). */
  problems: string[];
  probedAt: string;
}

/** A cross toolchain as `scripts/lib/cross-aarch64.sh` writes it (`<KILN_HOME>/toolchains/<name>/toolchain.json`). */
export interface CrossToolchainInfo {
  name: string;
  arch: string;
  /** Folder shown to cross jobs read-only; every path below lies inside it, except qemu. */
  root: string;
  site: string;
  sysroot: string;
  python: string;
  qemu: string;
  /** torch.__version__ of the target architecture's torch ("2.13.0+cu130"). */
  torch: string;
}

/** Reads and checks `<dir>/<name>/toolchain.json`; a problem (for the probe's list) when it is missing or broken. */
export async function readCrossToolchain(
  dir: string,
  name: string,
): Promise<{ toolchain: CrossToolchainInfo | null; problem: string | null }> {
  const root = path.join(dir, name);
  const file = path.join(root, 'toolchain.json');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    return {
      toolchain: null,
      problem: missing
        ? `cross toolchain ${name} is not installed (scripts/setup.sh --cross installs it)`
        : `cross toolchain ${name}: ${file} is unreadable: ${(err as Error).message}`,
    };
  }
  const keys = ['arch', 'site', 'sysroot', 'python', 'qemu', 'torch'] as const;
  const bad = keys.filter((k) => typeof raw[k] !== 'string' || raw[k] === '');
  if (bad.length > 0) return { toolchain: null, problem: `cross toolchain ${name}: ${file} lacks ${bad.join(', ')}` };
  const tc: CrossToolchainInfo = {
    name,
    arch: raw.arch as string,
    root: path.resolve(root),
    site: raw.site as string,
    sysroot: raw.sysroot as string,
    python: raw.python as string,
    qemu: raw.qemu as string,
    torch: raw.torch as string,
  };
  const outside = [tc.site, tc.sysroot, tc.python].filter((p) => !isInside(p, tc.root));
  if (outside.length > 0) {
    return { toolchain: null, problem: `cross toolchain ${name}: ${outside.join(', ')} lie outside ${tc.root}` };
  }
  const absent = [tc.site, tc.sysroot, tc.python, tc.qemu].filter((p) => !existsSync(p));
  if (absent.length > 0) return { toolchain: null, problem: `cross toolchain ${name}: ${absent.join(', ')} missing` };
  return { toolchain: tc, problem: null };
}

function isInside(p: string, root: string): boolean {
  const rel = path.relative(root, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

export interface CommandResult {
  /** Exit code, null when killed (timeout) or when the binary could not be started. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Spawn error or timeout, e.g. "ENOENT" or "timed out after 30000 ms". */
  error: string | null;
}

export type CommandRunner = (
  file: string,
  args: readonly string[],
  options: { timeoutMs: number; env: Record<string, string>; cwd?: string },
) => Promise<CommandResult>;

/** Runs a command with a timeout and a small, fixed environment (never the worker's own). */
export const runCommand: CommandRunner = (file, args, options) =>
  new Promise((resolve) => {
    execFile(
      file,
      [...args],
      {
        timeout: options.timeoutMs,
        killSignal: 'SIGKILL',
        env: options.env,
        cwd: options.cwd,
        maxBuffer: 4 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (!error) return resolve({ code: 0, stdout, stderr, error: null });
        const e = error as NodeJS.ErrnoException & { killed?: boolean; code?: string | number };
        const code = typeof e.code === 'number' ? e.code : null;
        const reason = e.killed
          ? `timed out after ${options.timeoutMs} ms`
          : typeof e.code === 'string'
            ? e.code
            : null;
        resolve({ code, stdout, stderr, error: reason });
      },
    );
  });

export interface SandboxedPythonCheck {
  ok: boolean;
  python: string | null;
  /** torch.__version__ imported by a subprocess of `sys.executable`, as inductor's compile workers do. */
  torch: string | null;
  problem: string | null;
}

export interface ProbeHostOptions {
  pythonPath: string;
  cpuinfoPath?: string;
  /** Compiler names to look for; default: every `recipe.toolchain.cxx` of the catalog. */
  compilers?: readonly string[];
  /** Importing torch takes ~2 s cold; a wedged import must not hang worker start-up. */
  torchTimeoutMs?: number;
  /** Injection points for tests (recorded command outputs instead of real commands). */
  run?: CommandRunner;
  findExecutable?: (name: string) => Promise<string | null>;
  /** Node's `process.arch`/`process.platform` values. */
  nodeArch?: string;
  /**
   * Checks the Python from inside the sandbox too (default: `checkSandboxedPython`); false skips it.
   * A venv whose base interpreter lives where the sandbox user cannot read (e.g. pyenv under /root, 0700)
   * starts through setpriv but cannot start subprocesses: every build would crash.
   */
  sandboxCheck?: false | ((pythonPath: string) => Promise<SandboxedPythonCheck>);
  platform?: string;
  /**
   * KILN_X86_LEVEL_CAP: probe as a CPU of at most this x86-64 level (its higher-level flags are dropped), so one
   * machine can act as an older build host; the cap is recorded as `x86LevelCap`.
   */
  x86LevelCap?: 1 | 2 | 3 | 4 | null;
  /** Where cross toolchains are installed (`<KILN_HOME>/toolchains`); absent: none are looked for. */
  crossToolchainsDir?: string;
}

const DRIVER_SOURCE_DIR = driverSourceDir();

const NODE_ARCH_TO_MACHINE: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i686' };

/**
 * python/driver, the folder kiln_driver's source is in, found upwards from this module (apps/worker/src/build-runner/
 * in the checkout, dist/apps/worker/src/build-runner/ once built); null when this module lives outside a checkout.
 */
export function driverSourceDir(from: string = import.meta.dirname): string | null {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'python', 'driver');
    if (existsSync(path.join(candidate, 'kiln_driver', 'probe.py'))) return candidate;
    if (path.dirname(dir) === dir) return null;
  }
}

// `python -m kiln_driver probe` (python/driver/kiln_driver/probe.py) prints the interpreter's version first, so a
// broken torch still tells which interpreter we talked to. It runs from the driver's source folder (`-m` imports
// from the working directory first), so that any interpreter answers, even one without Kiln's packages installed.
const PROBE_ARGS = ['-m', 'kiln_driver', 'probe'];

export async function probeHost(opts: ProbeHostOptions): Promise<HostProbe> {
  const run = opts.run ?? runCommand;
  const which = opts.findExecutable ?? ((name: string) => findExecutable(name, SANDBOX_PATH));
  const env = { PATH: SANDBOX_PATH, LANG: 'C.UTF-8' };
  const problems: string[] = [];
  const platform = opts.platform ?? process.platform;

  let arch = NODE_ARCH_TO_MACHINE[opts.nodeArch ?? process.arch] ?? null;
  if (!arch) {
    const uname = await run('uname', ['-m'], { timeoutMs: 5_000, env });
    arch = uname.stdout.trim() || (opts.nodeArch ?? process.arch);
  }

  let cpuinfo = '';
  try {
    cpuinfo = await readFile(opts.cpuinfoPath ?? '/proc/cpuinfo', 'utf8');
  } catch (err) {
    problems.push(`cannot read ${opts.cpuinfoPath ?? '/proc/cpuinfo'}: ${(err as Error).message}`);
  }
  const cpu = parseCpuinfo(cpuinfo);
  if (arch === 'x86_64' && opts.x86LevelCap) cpu.flags = capX86Flags(cpu.flags, opts.x86LevelCap);
  const x86Level = arch === 'x86_64' ? x86LevelFromFlags(cpu.flags) : null;

  const compilerNames = [...new Set(opts.compilers ?? TARGETS.map((t) => t.recipe.toolchain.cxx))];
  const sandboxCheck = opts.sandboxCheck === undefined ? checkSandboxedPython : opts.sandboxCheck;
  const [torchOut, sandboxed, glibc, gpus, ...compilers] = await Promise.all([
    run(opts.pythonPath, PROBE_ARGS, {
      timeoutMs: opts.torchTimeoutMs ?? 60_000,
      env,
      ...(DRIVER_SOURCE_DIR ? { cwd: DRIVER_SOURCE_DIR } : {}),
    }),
    sandboxCheck ? sandboxCheck(opts.pythonPath) : null,
    probeGlibc(run, env),
    probeGpus(run, which, env, problems),
    ...compilerNames.map((name) => probeCompiler(name, run, which, env)),
  ]);

  const [pythonLine, torchLine] = torchOut.stdout.split('\n').map((l) => l.trim());
  const python = pythonLine || null;
  const torch = torchOut.code === 0 && torchLine ? torchLine : null;
  if (!torch) {
    const why = torchOut.error ?? lastLine(torchOut.stderr) ?? `exit code ${torchOut.code}`;
    problems.push(`torch is not importable with ${opts.pythonPath}: ${why}`);
  }
  if (sandboxed && !sandboxed.ok) {
    problems.push(`the sandboxed driver cannot use ${opts.pythonPath}: ${sandboxed.problem}`);
  } else if (sandboxed && python && sandboxed.python !== python) {
    problems.push(`inside the sandbox ${opts.pythonPath} runs Python ${sandboxed.python}, outside ${python}`);
  }
  if (!glibc) problems.push('glibc version unknown (neither getconf GNU_LIBC_VERSION nor ldd --version answered)');
  const cross: Record<string, CrossToolchainInfo | null> = {};
  const crossNames = [...new Set(TARGETS.flatMap((t) => (t.recipe.cross ? [t.recipe.cross.toolchainName] : [])))];
  for (const name of crossNames) {
    if (!opts.crossToolchainsDir) {
      cross[name] = null;
      continue;
    }
    const found = await readCrossToolchain(opts.crossToolchainsDir, name);
    cross[name] = found.toolchain;
    if (found.problem) problems.push(found.problem);
  }
  const compilerMap: Record<string, CompilerInfo> = {};
  // A cross recipe's compiler comes with its toolchain (scripts/setup.sh --cross), an option: its absence is the
  // toolchain's, said once when that target is rejected, not a problem of the host.
  const crossCompilers = new Set(TARGETS.flatMap((t) => (t.recipe.cross ? [t.recipe.toolchain.cxx] : [])));
  compilerNames.forEach((name, i) => {
    compilerMap[name] = compilers[i];
    if (!compilers[i].path && !crossCompilers.has(name)) {
      problems.push(`C++ compiler ${name} is not on the sandbox PATH (${SANDBOX_PATH})`);
    }
  });

  return {
    os: platform,
    arch,
    cpuModel: cpu.model,
    cpuFlags: cpu.flags,
    x86Level,
    x86LevelCap: arch === 'x86_64' ? (opts.x86LevelCap ?? null) : null,
    logicalCpus: cpu.processors || os.availableParallelism(),
    toolchain: { pythonPath: opts.pythonPath, python, torch, compilers: compilerMap, glibc, sandboxed, cross },
    gpus,
    problems,
    probedAt: new Date().toISOString(),
  };
}

/** Model name (or, on ARM, implementer/part), flags and processor count of a /proc/cpuinfo text. */
export function parseCpuinfo(text: string): { model: string; flags: string[]; processors: number } {
  const field = (name: string): string | undefined => {
    const re = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm');
    return re.exec(text)?.[1]?.trim();
  };
  const processors = text.split('\n').filter((l) => /^processor\s*:/.test(l)).length;
  let model = field('model name')?.replace(/\s+/g, ' ');
  if (!model) {
    const implementer = field('CPU implementer');
    const part = field('CPU part');
    model = implementer && part ? `ARM implementer ${implementer} part ${part}` : 'unknown';
  }
  // x86 kernels print "flags", arm64 kernels "Features".
  const flags = parseCpuinfoFlags(text);
  return { model, flags: flags.length ? flags : (field('Features')?.split(/\s+/) ?? []), processors };
}

async function probeCompiler(
  name: string,
  run: CommandRunner,
  which: (name: string) => Promise<string | null>,
  env: Record<string, string>,
): Promise<CompilerInfo> {
  const found = await which(name);
  if (!found) return { path: null, versionLine: null, version: null };
  const out = await run(found, ['--version'], { timeoutMs: 10_000, env });
  const versionLine = out.code === 0 ? (out.stdout.split('\n')[0]?.trim() ?? null) : null;
  return { path: found, versionLine, version: versionLine ? parseToolVersion(versionLine) : null };
}

/** The last dotted version on a `--version` line: "g++ (Debian 12.2.0-14) 12.2.0" → "12.2.0". */
export function parseToolVersion(line: string): string | null {
  const all = [...line.matchAll(/(?:^|[\s(])(\d+\.\d+(?:\.\d+)?)(?=$|[\s)])/g)];
  return all.length ? all[all.length - 1][1] : null;
}

async function probeGlibc(run: CommandRunner, env: Record<string, string>): Promise<string | null> {
  const getconf = await run('getconf', ['GNU_LIBC_VERSION'], { timeoutMs: 5_000, env });
  const fromGetconf = /glibc\s+(\d+\.\d+)/.exec(getconf.stdout)?.[1];
  if (getconf.code === 0 && fromGetconf) return fromGetconf;
  const ldd = await run('ldd', ['--version'], { timeoutMs: 5_000, env });
  return parseLddVersion(ldd.stdout);
}

/** "ldd (Debian GLIBC 2.36-9+deb12u14) 2.36" → "2.36"; musl's ldd prints no such line → null. */
export function parseLddVersion(text: string): string | null {
  const first = text.split('\n')[0] ?? '';
  if (!/glibc|gnu libc/i.test(first)) return null;
  return /(\d+\.\d+)\s*$/.exec(first.trim())?.[1] ?? null;
}

async function probeGpus(
  run: CommandRunner,
  which: (name: string) => Promise<string | null>,
  env: Record<string, string>,
  problems: string[],
): Promise<GpuInfo[]> {
  const smi = await which('nvidia-smi');
  if (!smi) return [];
  const out = await run(smi, [`--query-gpu=${NVIDIA_SMI_QUERY}`, '--format=csv,noheader'], {
    timeoutMs: 20_000,
    env,
  });
  if (out.code !== 0) {
    problems.push(
      `nvidia-smi failed: ${out.error ?? lastLine(out.stderr) ?? lastLine(out.stdout) ?? `exit ${out.code}`}`,
    );
    return [];
  }
  return parseNvidiaSmiCsv(out.stdout);
}

/** The probe's nvidia-smi query (`--format=csv,noheader`). */
export const NVIDIA_SMI_QUERY = 'name,compute_cap,driver_version,index';

/**
 * Lines of `name, compute_cap, driver_version, index` (csv,noheader); also the older three-column form without
 * the index (then the line order, which is nvidia-smi's index order). Lines that are not a GPU are skipped.
 */
export function parseNvidiaSmiCsv(text: string): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  for (const line of lines) {
    const cols = line.split(',').map((c) => c.trim());
    const withIndex = cols.length >= 4 && /^\d+$/.test(cols[cols.length - 1]) && isCapability(cols[cols.length - 3]);
    if (withIndex) {
      gpus.push({
        name: cols.slice(0, -3).join(', '),
        computeCapability: cols[cols.length - 3],
        driverVersion: cols[cols.length - 2],
        index: Number(cols[cols.length - 1]),
      });
    } else if (cols.length >= 3 && isCapability(cols[cols.length - 2])) {
      gpus.push({
        name: cols.slice(0, -2).join(', '),
        computeCapability: cols[cols.length - 2],
        driverVersion: cols[cols.length - 1],
        index: gpus.length,
      });
    }
  }
  return gpus;
}

function isCapability(text: string | undefined): boolean {
  return /^\d+\.\d+$/.test(text ?? '');
}

function lastLine(text: string): string | null {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.length ? lines[lines.length - 1] : null;
}

export interface TargetDecision {
  targetId: string;
  reason: string;
}

/**
 * Which catalog targets this host can build AND verify (pure). A CPU target needs the same OS/arch, a CPU
 * at least at the target's x86-64 level (the artifact is run here before it is published), exactly the
 * recipe's torch build and its C++ compiler. A GPU target needs, on top, a GPU of exactly the target's
 * compute capability (Triton builds natively for the build GPU). `restrictTo` narrows the result to the
 * ids an operator configured; ids it names that the catalog lacks are reported as rejected.
 */
export function buildableTargets(
  probe: HostProbe,
  catalog: readonly TargetDefinition[],
  restrictTo?: readonly string[],
): { buildable: TargetDecision[]; rejected: TargetDecision[] } {
  const buildable: TargetDecision[] = [];
  const rejected: TargetDecision[] = [];
  const restrict = restrictTo && restrictTo.length > 0 ? new Set(restrictTo) : null;

  for (const target of catalog) {
    if (restrict && !restrict.has(target.id)) {
      rejected.push({ targetId: target.id, reason: 'not in this worker’s target list (KILN_WORKER_TARGETS)' });
      continue;
    }
    const { requires, recipe } = target;
    const problems: string[] = [];
    const fits: string[] = [];

    const cross = recipe.cross;
    if (cross) {
      // Cross-built on a host of the recipe's buildArch, verified under emulation with the installed toolchain.
      if (probe.os !== requires.os || probe.arch !== cross.buildArch) {
        problems.push(
          `host is ${probe.os}/${probe.arch}, the ${requires.arch} target is cross-built on ${requires.os}/${cross.buildArch}`,
        );
      } else {
        fits.push(`${probe.os}/${probe.arch} cross-builds ${requires.arch}`);
      }
      const tc = probe.toolchain.cross?.[cross.toolchainName] ?? null;
      if (!tc) {
        problems.push(`cross toolchain ${cross.toolchainName} is not installed (scripts/setup.sh --cross)`);
      } else if (tc.torch !== cross.targetTorch) {
        problems.push(
          `cross toolchain ${cross.toolchainName} has torch ${tc.torch}, the recipe pins ${cross.targetTorch}`,
        );
      } else {
        fits.push(`${cross.toolchainName} toolchain (torch ${tc.torch}, ${path.basename(tc.qemu)})`);
      }
    } else if (probe.os !== requires.os || probe.arch !== requires.arch) {
      problems.push(`host is ${probe.os}/${probe.arch}, target needs ${requires.os}/${requires.arch}`);
    } else {
      fits.push(`${probe.os}/${probe.arch}`);
    }
    if (requires.x86Level !== null) {
      if (probe.x86Level === null || probe.x86Level < requires.x86Level) {
        problems.push(
          `CPU ${probe.cpuModel} is x86-64-v${probe.x86Level ?? '?'}, below v${requires.x86Level}: ` +
            'it could build but not run the artifact to verify it',
        );
      } else {
        fits.push(`CPU x86-64-v${probe.x86Level} ≥ v${requires.x86Level}`);
      }
    }
    if (requires.computeCapability !== null) {
      const gpu = probe.gpus.find((g) => g.computeCapability === requires.computeCapability);
      if (!gpu) {
        const have = probe.gpus.length
          ? probe.gpus.map((g) => `${g.name} (${g.computeCapability})`).join(', ')
          : 'no GPU';
        problems.push(`needs a GPU of compute capability ${requires.computeCapability}, host has ${have}`);
      } else {
        fits.push(`GPU ${gpu.name} (compute capability ${gpu.computeCapability})`);
      }
    }
    const torch = probe.toolchain.torch;
    const sandboxed = probe.toolchain.sandboxed;
    if (sandboxed && !sandboxed.ok) {
      problems.push(`the sandboxed driver cannot use the worker's Python: ${sandboxed.problem}`);
    } else if (sandboxed?.torch && sandboxed.torch !== recipe.toolchain.torch && torch === recipe.toolchain.torch) {
      problems.push(`inside the sandbox torch is ${sandboxed.torch}, the recipe pins ${recipe.toolchain.torch}`);
    }
    if (torch !== recipe.toolchain.torch) {
      problems.push(
        torch === null
          ? `torch is not importable on this host; recipe pins ${recipe.toolchain.torch}`
          : `host torch ${torch} differs from the recipe's ${recipe.toolchain.torch}`,
      );
    } else {
      fits.push(`torch ${torch}`);
    }
    const cxx = probe.toolchain.compilers[recipe.toolchain.cxx];
    if (!cxx?.path) {
      problems.push(`C++ compiler ${recipe.toolchain.cxx} not found`);
    } else {
      fits.push(`${recipe.toolchain.cxx} ${cxx.version ?? '(version unknown)'} at ${cxx.path}`);
    }

    if (problems.length) rejected.push({ targetId: target.id, reason: problems.join('; ') });
    else buildable.push({ targetId: target.id, reason: fits.join(', ') });
  }

  if (restrict) {
    const known = new Set(catalog.map((t) => t.id));
    for (const id of restrict) {
      if (!known.has(id)) rejected.push({ targetId: id, reason: 'unknown target id (not in the catalog)' });
    }
  }
  return { buildable, rejected };
}

export interface BuildQueue {
  targetId: string;
  taskQueue: string;
  /** Builds of this target this host runs at once: the configured CPU concurrency, or its GPUs' count. */
  concurrency: number;
  /** CUDA targets: the compute capability and the nvidia-smi indices of this host's GPUs of it. */
  gpus: { computeCapability: string; indices: number[] } | null;
  reason: string;
}

/**
 * The target queues this host polls and how many builds of each it runs at once (pure). CPU targets: the
 * configured concurrency. CUDA targets: one build per GPU of exactly the target's compute capability, each pinned
 * to its own GPU (see GpuSlotPool; targets of one capability share those GPUs). A host without such a GPU never
 * polls a CUDA queue (buildableTargets rejects it).
 */
export function buildQueues(
  probe: HostProbe,
  catalog: readonly TargetDefinition[],
  opts: { restrictTo?: readonly string[]; cpuConcurrency: number; taskQueueFor: (targetId: string) => string },
): { queues: BuildQueue[]; rejected: TargetDecision[] } {
  const { buildable, rejected } = buildableTargets(probe, catalog, opts.restrictTo);
  const queues: BuildQueue[] = [];
  for (const decision of buildable) {
    const target = catalog.find((t) => t.id === decision.targetId);
    if (!target) continue;
    const cc = target.requires.computeCapability;
    if (cc === null) {
      queues.push({
        targetId: target.id,
        taskQueue: opts.taskQueueFor(target.id),
        concurrency: opts.cpuConcurrency,
        gpus: null,
        reason: decision.reason,
      });
      continue;
    }
    const indices = probe.gpus
      .filter((g) => g.computeCapability === cc)
      .map((g) => g.index)
      .sort((a, b) => a - b);
    queues.push({
      targetId: target.id,
      taskQueue: opts.taskQueueFor(target.id),
      concurrency: indices.length,
      gpus: { computeCapability: cc, indices },
      reason: `${decision.reason}; ${indices.length} GPU${indices.length === 1 ? '' : 's'} (${indices.join(', ')})`,
    });
  }
  return { queues, rejected };
}

/**
 * Can the sandbox user (nobody, no network, the toolchain view) run `pythonPath` and start torch subprocesses
 * with it? The worker itself learns this from its sandbox self-test; this is the same question for any Python.
 */
export async function checkSandboxedPython(
  pythonPath: string,
  opts: Partial<Pick<JobSandboxSettings, 'workRoot' | 'timeoutMs' | 'insecureLocal' | 'host'>> = {},
): Promise<SandboxedPythonCheck> {
  const folder = await createJobFolder(opts.workRoot ?? os.tmpdir());
  try {
    const request = await jobSandboxRequest(
      {
        pythonPath,
        workRoot: folder.dir,
        timeoutMs: opts.timeoutMs ?? 180_000,
        memoryBytes: 4 * 1024 * 1024 * 1024,
        killGraceMs: 1_000,
        insecureLocal: opts.insecureLocal,
        host: opts.host,
        // The sandbox shows the folders of the PYTHONPATH too: the probe then runs on an interpreter without Kiln's
        // packages as well (cwd does not count inside: PYTHONSAFEPATH).
        ...(DRIVER_SOURCE_DIR ? { env: { PYTHONPATH: DRIVER_SOURCE_DIR } } : {}),
      },
      folder,
      // Run as the sandboxed driver runs: python starts a subprocess of sys.executable that imports torch (the way
      // inductor's compile workers and the driver's fresh-process verifier start).
      [...PROBE_ARGS, '--subprocess'],
    );
    await Promise.all([folder.modelPath, folder.jobPath].map((f) => writeFile(f, '', { mode: 0o444 })));
    const result = await runSandboxed(request);
    const line = lastLine(result.stdoutTail);
    let parsed: { python?: string; torch?: string | null; error?: string | null } = {};
    try {
      parsed = line ? (JSON.parse(line) as typeof parsed) : {};
    } catch {
      // not our JSON: the interpreter did not even start properly
    }
    const python = parsed.python ?? null;
    const torch = parsed.torch ?? null;
    const problem = torch
      ? null
      : (parsed.error ?? `exit ${result.exitCode ?? result.signal}: ${lastLine(result.stderrTail) ?? 'no output'}`);
    return { ok: torch !== null, python, torch, problem };
  } catch (err) {
    return { ok: false, python: null, torch: null, problem: (err as Error).message };
  } finally {
    await folder.remove();
  }
}
