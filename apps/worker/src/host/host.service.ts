import { Injectable, Logger } from '@nestjs/common';
import { KilnConfig } from '@kiln/config';
import { findTarget, TARGETS, taskQueueFor } from '@kiln/targets';
import { GpuSlotPool } from '../build-runner/gpu-slots.js';
import { type BuildQueue, buildQueues, type HostProbe, probeHost } from '../build-runner/host-probe.js';

export interface HostInfo {
  cpuModel: string;
  x86Level: number | null;
  gpuName: string | null;
  driverVersion: string | null;
}

/**
 * This host as the build worker sees it: probed once at start, decides which target queues to poll, how many
 * builds of each run at once, and which GPU each CUDA build gets (one pool per compute capability).
 */
@Injectable()
export class HostService {
  private readonly logger = new Logger(HostService.name);
  private probe?: HostProbe;
  private queues?: BuildQueue[];
  private readonly gpuPools = new Map<string, GpuSlotPool>();

  constructor(private readonly config: KilnConfig) {}

  async init(): Promise<HostProbe> {
    this.probe = await probeHost({
      pythonPath: this.config.resolvePath(this.config.KILN_PYTHON),
      x86LevelCap: this.config.KILN_X86_LEVEL_CAP,
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
    return this.probe;
  }

  /** The queues to poll, with their concurrency; the reasons others were left out are logged. */
  servedQueues(): BuildQueue[] {
    if (!this.queues) {
      const restrict = this.config.KILN_WORKER_TARGETS.length > 0 ? this.config.KILN_WORKER_TARGETS : undefined;
      const { queues, rejected } = buildQueues(this.requireProbe(), TARGETS, {
        restrictTo: restrict,
        cpuConcurrency: this.config.KILN_WORKER_BUILD_CONCURRENCY,
        taskQueueFor,
      });
      for (const r of rejected) this.logger.log(`not serving ${r.targetId}: ${r.reason}`);
      for (const q of queues) {
        this.logger.log(`serving ${q.targetId} (${q.concurrency} at a time): ${q.reason}`);
        if (q.gpus && !this.gpuPools.has(q.gpus.computeCapability)) {
          this.gpuPools.set(q.gpus.computeCapability, new GpuSlotPool(q.gpus.computeCapability, q.gpus.indices));
        }
      }
      this.queues = queues;
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
