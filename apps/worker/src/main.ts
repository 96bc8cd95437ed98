import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { validateKilnConfig } from '@kiln/config';
import { TemporalWorkersService } from './temporal-workers.service.js';
import { type WorkerRole, WorkerModule } from './worker.module.js';

// A Nest application context (no HTTP port): Temporal workers plus the services their activities use, by role.
const config = validateKilnConfig(process.env);
const roles = config.KILN_WORKER_ROLES as WorkerRole[];
const app = await NestFactory.createApplicationContext(WorkerModule.forRoles(roles));
app.enableShutdownHooks();
const { queues, buildsRefused } = await app.get(TemporalWorkersService).start();
new Logger('Kiln').log(`worker id ${config.workerId} (KILN_WORKER_ID)`);
// scripts/stack.sh waits for this exact line.
new Logger('Kiln').log(`worker ready, polling: ${queues.join(', ')}`);
if (buildsRefused) {
  new Logger('Kiln').error(`this worker serves NO build queue: the build sandbox does not hold (${buildsRefused})`);
}
