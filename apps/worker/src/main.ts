import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Logger as PinoLogger } from 'nestjs-pino';
import { validateKilnConfig } from '@kiln/config';
import { startMetricsServer } from '@kiln/core';
import { startTracing } from '@kiln/tracing';
import { WorkerMetrics } from './metrics/worker-metrics.js';
import { installTemporalRuntime } from './temporal-runtime.js';
import { TemporalWorkersService } from './temporal-workers.service.js';
import { type WorkerRole, WorkerModule } from './worker.module.js';

// A Nest application context (no HTTP port): Temporal workers plus the services their activities use, by role.
const config = validateKilnConfig(process.env);
const roles = config.KILN_WORKER_ROLES as WorkerRole[];
// Before the context exists: its Temporal client and workers are made with the tracing interceptors when it is on.
const tracing = startTracing(config, 'kiln-worker');
// Before any connection exists: the Temporal runtime is made once, logging through Nest, with its metrics exporter.
const temporalMetrics = await installTemporalRuntime({ metrics: config.KILN_WORKER_METRICS_PORT !== 0 });
const app = await NestFactory.createApplicationContext(WorkerModule.forRoles(roles), { bufferLogs: true });
app.useLogger(app.get(PinoLogger));
app.enableShutdownHooks();
if (tracing) new Logger('Kiln').log(`traces to ${tracing.url} as ${tracing.serviceName}`);
if (temporalMetrics) {
  const host = config.KILN_METRICS_HOST;
  const port = config.KILN_WORKER_METRICS_PORT;
  const server = await startMetricsServer(app.get(WorkerMetrics).registry, port, host, temporalMetrics);
  // Never what keeps the process alive: a shutdown ends with the workers.
  server.unref();
  new Logger('Kiln').log(`metrics at http://${host}:${port}/metrics`);
}
const { queues, buildsRefused } = await app.get(TemporalWorkersService).start();
new Logger('Kiln').log(`worker id ${config.workerId} (KILN_WORKER_ID)`);
// scripts/stack.sh waits for this exact line.
new Logger('Kiln').log(`worker ready, polling: ${queues.join(', ')}`);
if (buildsRefused) {
  new Logger('Kiln').error(`this worker serves NO build queue: the build sandbox does not hold (${buildsRefused})`);
}
