import { Injectable, Logger } from '@nestjs/common';
import { KilnConfig } from '@kiln/config';
import { TARGETS } from '@kiln/targets';
import { buildableTargets, type HostProbe, probeHost } from '../build-runner/host-probe.js';

export interface HostInfo {
  cpuModel: string;
  x86Level: number | null;
  gpuName: string | null;
  driverVersion: string | null;
}

/** This host as the build worker sees it: probed once at start, decides which target queues to poll. */
@Injectable()
export class HostService {
  private readonly logger = new Logger(HostService.name);
  private probe?: HostProbe;

  constructor(private readonly config: KilnConfig) {}

  async init(): Promise<HostProbe> {
    this.probe = await probeHost({ pythonPath: this.config.resolvePath(this.config.KILN_PYTHON) });
    return this.probe;
  }

  /** Target ids this host can build and verify, with the reasons others were left out (logged). */
  servedTargets(): string[] {
    const restrict = this.config.KILN_WORKER_TARGETS.length > 0 ? this.config.KILN_WORKER_TARGETS : undefined;
    const { buildable, rejected } = buildableTargets(this.requireProbe(), TARGETS, restrict);
    for (const r of rejected) this.logger.log(`not serving ${r.targetId}: ${r.reason}`);
    return buildable.map((b) => b.targetId);
  }

  hostInfo(): HostInfo {
    const probe = this.requireProbe();
    const gpu = probe.gpus[0];
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
