import { createServer } from 'node:net';
import { Runtime } from '@temporalio/worker';

/**
 * Installs the Temporal SDK's runtime with its Prometheus exporter on a loopback port of its own (the kernel's pick)
 * and returns a scrape of it, which the worker's /metrics appends to its own text: one scrape target per process.
 * Must run before anything creates the runtime (the first NativeConnection or Worker does, with no metrics).
 * Names start `temporal_` (worker task slots, poll and schedule-to-start latencies, activity execution latency...).
 */
export async function installTemporalRuntimeMetrics(): Promise<() => Promise<string>> {
  const port = await loopbackPort();
  Runtime.install({
    telemetryOptions: {
      metrics: {
        prometheus: { bindAddress: `127.0.0.1:${port}`, countersTotalSuffix: true, useSecondsForDurations: true },
      },
    },
  });
  return async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    if (!res.ok) throw new Error(`the Temporal runtime's metrics answered HTTP ${res.status}`);
    return res.text();
  };
}

/** A free port on 127.0.0.1 (released just before the runtime binds it). */
async function loopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === 'string') throw new Error('no loopback port');
  return address.port;
}
