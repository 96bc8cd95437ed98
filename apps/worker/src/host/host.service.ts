import path from 'node:path';
import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { KilnConfig } from '@kiln/config';
import { findTarget, TARGETS, taskQueueFor } from '@kiln/targets';
import { compileJobSettings, ensureTimingLock, protectedPaths } from '../activities/compile-job-settings.js';
import { removeStaleJobCgroups } from '../build-runner/cgroup-limits.js';
import { GpuSlotPool } from '../build-runner/gpu-slots.js';
import { sweepStaleJobFolders } from '../build-runner/job-folder.js';
import {
  type BuildQueue,
  buildQueues,
  type CrossToolchainInfo,
  type HostProbe,
  probeHost,
} from '../build-runner/host-probe.js';
import { probeSandboxHost, type SandboxHost } from '../build-runner/sandbox-probe.js';
import { type HostEndpoint, runSandboxSelfTest, type SelfTestReport } from '../build-runner/sandbox-self-test.js';
import { gpuDevices } from '../build-runner/sandbox-view.js';
import {
  keepVecIsaAnswer,
  keptVecIsaAnswer,
  runVecIsaCheck,
  type VecIsaAnswer,
  vecIsaKey,
} from '../build-runner/vec-isa-check.js';

export interface HostInfo {
  cpuModel: string;
  x86Level: number | null;
  gpuName: string | null;
  driverVersion: string | null;
}

/** Whether this worker may serve build queues, after its sandbox self-test. */
export interface SandboxGate {
  serveBuilds: boolean;
  /** Builds run without every wall (KILN_SANDBOX=insecure-local and a wall is missing). */
  insecure: boolean;
  /** CUDA queues: the GPU is usable inside the sandbox. */
  gpuOk: boolean;
  report: SelfTestReport;
}

/**
 * This host as the build worker sees it: probed once at start, decides which target queues to poll, how many
 * builds of each run at once, and which GPU each CUDA build gets (one pool per compute capability). No build
 * queue at all unless the sandbox self-test finds every wall in place (or the operator opted out, loudly).
 */
@Injectable()
export class HostService implements OnApplicationShutdown {
  private readonly logger = new Logger(HostService.name);
  private probe?: HostProbe;
  private queues?: BuildQueue[];
  private readonly gpuPools = new Map<string, GpuSlotPool>();
  private sandbox?: { host: SandboxHost; gate: SandboxGate };
  /** inductor's vector-ISA check per compiler path, once answered (vec-isa-check.ts). */
  private readonly vecIsa = new Map<string, VecIsaAnswer>();
  private readonly stopping = new AbortController();
  private vecIsaChecks: Promise<void> = Promise.resolve();

  constructor(private readonly config: KilnConfig) {}

  async onApplicationShutdown(): Promise<void> {
    this.stopping.abort();
    await this.vecIsaChecks;
  }

  async init(): Promise<HostProbe> {
    const pythonPath = this.config.resolvePath(this.config.KILN_PYTHON);
    // The Python as the sandboxed driver sees it comes from the self-test below, which runs it exactly so.
    this.probe = await probeHost({
      pythonPath,
      sandboxCheck: false,
      x86LevelCap: this.config.KILN_X86_LEVEL_CAP,
      crossToolchainsDir: path.join(this.config.resolvePath(this.config.KILN_HOME), 'toolchains'),
    });
    if (this.probe.x86LevelCap !== null) {
      this.logger.warn(
        `KILN_X86_LEVEL_CAP=${this.probe.x86LevelCap}: probing this CPU as x86-64-v${this.probe.x86Level}`,
      );
    }
    for (const gpu of this.probe.gpus) {
      this.logger.log(
        `GPU ${gpu.index}: ${gpu.name}, compute capability ${gpu.computeCapability}, driver ${gpu.driverVersion}`,
      );
    }
    const stale = await sweepStaleJobFolders(path.join(this.config.workDir, 'jobs'));
    const gate = await this.checkSandbox();
    if (stale.length) {
      const cgroups = await removeStaleJobCgroups(this.sandboxHost().cgroups, stale);
      this.logger.log(`removed ${stale.length} job folder(s) and ${cgroups} cgroup(s) of workers that are gone`);
    }
    this.probe.toolchain.sandboxed = gate.report.toolchain;
    if (!gate.report.toolchain.ok) {
      this.probe.problems.push(`the sandboxed driver cannot use ${pythonPath}: ${gate.report.toolchain.problem}`);
    }
    if (gate.serveBuilds && this.probe.arch === 'x86_64') {
      // An answer kept by an earlier start on this host and toolchain is used from the first build on; a missing one
      // is checked in the background (a build that starts before it is answered checks itself, as before).
      const unchecked = await this.keptVecIsaAnswers();
      if (unchecked.length > 0) this.vecIsaChecks = this.checkVecIsa(unchecked);
    }
    return this.probe;
  }

  /** Each compiler of the catalog with the file its vector-ISA answer is kept in (under the worker's work folder). */
  private vecIsaCompilers(): { cxx: string; file: string; key: string }[] {
    const probe = this.requireProbe();
    // One per compiler binary: several recipe compiler names may resolve to the same path. Not a cross recipe's
    // compiler: its vector ISA is the target's, forced (kiln_driver/cross.py), never checked on this host.
    const native = new Set(TARGETS.filter((t) => !t.recipe.cross).map((t) => t.recipe.toolchain.cxx));
    const byPath = new Map(
      Object.entries(probe.toolchain.compilers).flatMap(([name, c]) =>
        c.path && native.has(name) ? [[c.path, c] as const] : [],
      ),
    );
    return [...byPath].map(([cxx, compiler]) => {
      const key = vecIsaKey({
        pythonPath: probe.toolchain.pythonPath,
        torch: probe.toolchain.torch,
        cxx,
        compilerVersion: compiler.versionLine,
        cpuFlags: [probe.cpuModel, ...probe.cpuFlags],
      });
      return { cxx, key, file: path.join(this.config.workDir, 'vec-isa', `${key}.json`) };
    });
  }

  /** Takes the kept answers; returns the compilers that have none. */
  private async keptVecIsaAnswers(): Promise<{ cxx: string; file: string; key: string }[]> {
    const unchecked = [];
    for (const c of this.vecIsaCompilers()) {
      const answer = await keptVecIsaAnswer(c.file, c.key);
      if (answer) this.useVecIsa(answer, 'kept from an earlier check on this host');
      else unchecked.push(c);
    }
    return unchecked;
  }

  /**
   * inductor's vector-ISA check with these compilers, one at a time, in the sandbox with the settings builds get;
   * each answer is kept for the next start (vec-isa-check.ts).
   */
  private async checkVecIsa(compilers: { cxx: string; file: string; key: string }[]): Promise<void> {
    const settings = compileJobSettings(this.config, {
      timingLock: await ensureTimingLock(this.config),
      host: this.sandboxHost(),
    });
    for (const { cxx, file, key } of compilers) {
      if (this.stopping.signal.aborted) return;
      const started = Date.now();
      const { answer, problem } = await runVecIsaCheck(settings, cxx, this.stopping.signal);
      if (answer) {
        await keepVecIsaAnswer(file, key, answer);
        this.useVecIsa(answer, `checked in ${Date.now() - started} ms`);
      } else if (!this.stopping.signal.aborted) {
        this.logger.warn(`vector-ISA check with ${cxx} gave no answer (${problem}): every build checks itself`);
      }
    }
  }

  private useVecIsa(answer: VecIsaAnswer, how: string): void {
    this.vecIsa.set(answer.cxx, answer);
    this.logger.log(
      `vector ISAs with ${answer.cxx}: ${answer.valid.join(', ') || 'none'} valid of ` +
        `${answer.listed.join(', ') || 'none listed'} (${how})`,
    );
  }

  /** The installed cross toolchain a cross recipe names; null when this host has none (it then serves no such queue). */
  crossToolchain(name: string): CrossToolchainInfo | null {
    return this.probe?.toolchain.cross?.[name] ?? null;
  }

  /** The worker's vector-ISA answer for a recipe's compiler name; null until checked (the build then checks). */
  vecIsaFor(cxxName: string): VecIsaAnswer | null {
    const cxx = this.probe?.toolchain.compilers[cxxName]?.path;
    return cxx ? (this.vecIsa.get(cxx) ?? null) : null;
  }

  /**
   * The self-test: `python -m kiln_driver sandbox-check` inside the sandbox, with exactly the settings builds get
   * (on a GPU host, with the GPU's device nodes), every wall checked from inside. Logged wall by wall.
   */
  private async checkSandbox(): Promise<SandboxGate> {
    const host = await probeSandboxHost({ bwrap: this.config.KILN_SANDBOX_BWRAP || undefined });
    const gpus = this.requireProbe().gpus;
    const settings = compileJobSettings(this.config, {
      timingLock: await ensureTimingLock(this.config),
      host,
      gpu: gpus.length > 0 ? { index: gpus[0].index, release: () => undefined } : null,
      gpuDevices: gpus.length > 0 ? await gpuDevices() : [],
    });
    const report = await runSandboxSelfTest({
      settings,
      endpoints: this.serviceEndpoints(),
      unixSockets: ['/var/run/postgresql', '/run/postgresql'].flatMap((d) =>
        [5432, this.databasePort()].map((port) => `${d}/.s.PGSQL.${port}`),
      ),
      hidden: protectedPaths(this.config),
      gpu: gpus.length > 0,
    });
    const insecureLocal = this.config.KILN_SANDBOX === 'insecure-local';
    const gate: SandboxGate = {
      serveBuilds: report.ok || insecureLocal,
      insecure: !report.ok,
      gpuOk: !report.failed.some((c) => c.wall === 'gpu'),
      report,
    };
    // Builds plan with what the self-test found: a wall it saw missing counts as missing in every build's plan
    // (refused outright, or recorded as insecure-local).
    const failedSelfTest = report.failed.map((c) => ({ wall: c.wall, why: c.detail }));
    this.sandbox = { host: { ...host, failedSelfTest }, gate };
    const tool = host.bwrapVersion ?? 'no bubblewrap';
    for (const c of report.checks) {
      if (c.ok) this.logger.log(`sandbox wall ${c.wall}: holds — ${c.detail}`);
      else this.logger.error(`SANDBOX WALL MISSING: ${c.wall} — ${c.detail}`);
    }
    if (report.ok) {
      this.logger.log(`build sandbox holds (${tool}, every wall checked from inside a job)`);
    } else if (insecureLocal) {
      this.logger.warn(
        `INSECURE: the build sandbox does NOT hold (${report.failed.map((c) => c.wall).join(', ')}), and ` +
          'KILN_SANDBOX=insecure-local lets this worker build anyway. Every build log and manifest says so; the ' +
          'resolver serves none of these artifacts to devices unless asked. Never do this with untrusted models.',
      );
    } else {
      this.logger.error(
        `REFUSING TO BUILD: the build sandbox does not hold (${report.failed.map((c) => c.wall).join(', ')}); ` +
          'this worker polls no build queue. Fix the host (docs/security.md, "Build sandbox") or, on a ' +
          'developer machine only, set KILN_SANDBOX=insecure-local.',
      );
    }
    return gate;
  }

  /** Where this worker's own services listen: a job must reach none of them (nor the usual ports). */
  private serviceEndpoints(): HostEndpoint[] {
    const endpoints: HostEndpoint[] = [
      { host: '127.0.0.1', port: 5432, what: 'PostgreSQL' },
      { host: '127.0.0.1', port: 7233, what: 'Temporal' },
      { host: '127.0.0.1', port: 8333, what: 'S3' },
      { host: '127.0.0.1', port: this.config.KILN_API_PORT, what: 'the API' },
      { host: '127.0.0.1', port: this.databasePort(), what: 'PostgreSQL (DATABASE_URL)' },
    ];
    const temporal = /^\[?([^\]]+?)\]?:(\d+)$/.exec(this.config.TEMPORAL_ADDRESS);
    if (temporal) endpoints.push({ host: temporal[1], port: Number(temporal[2]), what: 'Temporal (TEMPORAL_ADDRESS)' });
    try {
      const s3 = new URL(this.config.S3_ENDPOINT);
      endpoints.push({ host: s3.hostname, port: Number(s3.port || 80), what: 'S3 (S3_ENDPOINT)' });
    } catch {
      // validated by KilnConfig
    }
    const seen = new Set<string>();
    return endpoints.filter(
      (e) => /^[\d.]+$/.test(e.host) && !seen.has(`${e.host}:${e.port}`) && seen.add(`${e.host}:${e.port}`),
    );
  }

  private databasePort(): number {
    try {
      return Number(new URL(this.config.DATABASE_URL).port || 5432);
    } catch {
      return 5432;
    }
  }

  /** What this host offers the sandbox (probed in init). */
  sandboxHost(): SandboxHost {
    if (!this.sandbox) throw new Error('HostService.init() has not run');
    return this.sandbox.host;
  }

  /** The outcome of the sandbox self-test (init). */
  sandboxGate(): SandboxGate {
    if (!this.sandbox) throw new Error('HostService.init() has not run');
    return this.sandbox.gate;
  }

  /** The queues to poll, with their concurrency; the reasons others were left out are logged. */
  servedQueues(): BuildQueue[] {
    if (!this.queues) {
      const gate = this.sandboxGate();
      if (!gate.serveBuilds) {
        this.queues = [];
        return this.queues;
      }
      const restrict = this.config.KILN_WORKER_TARGETS.length > 0 ? this.config.KILN_WORKER_TARGETS : undefined;
      const { queues, rejected } = buildQueues(this.requireProbe(), TARGETS, {
        restrictTo: restrict,
        cpuConcurrency: this.config.KILN_WORKER_BUILD_CONCURRENCY,
        taskQueueFor,
      });
      for (const r of rejected) this.logger.log(`not serving ${r.targetId}: ${r.reason}`);
      const usable = queues.filter((q) => !q.gpus || gate.gpuOk);
      for (const q of queues.filter((q) => !usable.includes(q))) {
        this.logger.error(`not serving ${q.targetId}: the GPU is not usable inside the build sandbox`);
      }
      for (const q of usable) {
        this.logger.log(`serving ${q.targetId} (${q.concurrency} at a time): ${q.reason}`);
        if (q.gpus && !this.gpuPools.has(q.gpus.computeCapability)) {
          this.gpuPools.set(q.gpus.computeCapability, new GpuSlotPool(q.gpus.computeCapability, q.gpus.indices));
        }
      }
      this.queues = usable;
    }
    return this.queues;
  }

  /** Target ids this host can build and verify. */
  servedTargets(): string[] {
    return this.servedQueues().map((q) => q.targetId);
  }

  /** The GPUs a CUDA target's builds take turns on; null for CPU targets and targets this host does not serve. */
  gpuPoolFor(targetId: string): GpuSlotPool | null {
    const cc = findTarget(targetId)?.requires.computeCapability ?? null;
    if (cc === null) return null;
    this.servedQueues();
    return this.gpuPools.get(cc) ?? null;
  }

  /** The host as recorded in a build's manifest; for a CUDA build, the GPU it holds. */
  hostInfo(gpuIndex?: number): HostInfo {
    const probe = this.requireProbe();
    const gpu = gpuIndex === undefined ? probe.gpus[0] : probe.gpus.find((g) => g.index === gpuIndex);
    return {
      cpuModel: probe.cpuModel,
      x86Level: probe.x86Level,
      gpuName: gpu?.name ?? null,
      driverVersion: gpu?.driverVersion ?? null,
    };
  }

  private requireProbe(): HostProbe {
    if (!this.probe) throw new Error('HostService.init() has not run');
    return this.probe;
  }
}
