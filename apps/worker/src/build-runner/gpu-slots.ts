/**
 * The GPUs of one compute capability on this host, handed out one per build. A CUDA build runs with
 * CUDA_VISIBLE_DEVICES set to the GPU it holds (and CUDA_DEVICE_ORDER=PCI_BUS_ID, so the index means what
 * nvidia-smi's `index` column says), compiles for it and verifies on it; nothing else uses that GPU meanwhile,
 * so its timings are its own.
 *
 * The worker polls each CUDA target queue with as many concurrent builds as there are GPUs of that capability.
 * Two targets share one pool (linux-x86_64-cuda-sm90 and its -bf16 variant both run on the H100s), so when both
 * queues deliver work at once a build may wait here for a GPU (heartbeating) instead of oversubscribing one.
 */
export interface GpuLease {
  /** nvidia-smi index of the GPU (PCI bus order). */
  readonly index: number;
  /** Gives the GPU back; idempotent. */
  release(): void;
}

interface Waiter {
  resolve: (lease: GpuLease) => void;
  reject: (err: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class GpuSlotPool {
  private readonly free: number[];
  private readonly waiters: Waiter[] = [];

  constructor(
    readonly computeCapability: string,
    readonly indices: readonly number[],
  ) {
    if (new Set(indices).size !== indices.length) throw new Error(`duplicate GPU indices ${indices.join(',')}`);
    this.free = [...indices].sort((a, b) => a - b);
  }

  get size(): number {
    return this.indices.length;
  }

  get available(): number {
    return this.free.length;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** A GPU now, or null when all are taken. */
  tryAcquire(): GpuLease | null {
    const index = this.free.shift();
    return index === undefined ? null : this.lease(index);
  }

  /** The next free GPU, first come first served; rejects with the signal's reason when aborted while waiting. */
  acquire(signal?: AbortSignal): Promise<GpuLease> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const now = this.tryAcquire();
    if (now) return Promise.resolve(now);
    return new Promise<GpuLease>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal };
      if (signal) {
        waiter.onAbort = () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(abortError(signal));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.waiters.push(waiter);
    });
  }

  private lease(index: number): GpuLease {
    let released = false;
    return {
      index,
      release: () => {
        if (released) return;
        released = true;
        this.giveBack(index);
      },
    };
  }

  private giveBack(index: number): void {
    const next = this.waiters.shift();
    if (next) {
      if (next.onAbort) next.signal?.removeEventListener('abort', next.onAbort);
      next.resolve(this.lease(index));
      return;
    }
    this.free.push(index);
    this.free.sort((a, b) => a - b);
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted while waiting for a GPU');
}

/** The environment that pins a build to the GPU it holds. */
export function gpuEnvironment(lease: GpuLease): Record<string, string> {
  return { CUDA_DEVICE_ORDER: 'PCI_BUS_ID', CUDA_VISIBLE_DEVICES: String(lease.index) };
}
