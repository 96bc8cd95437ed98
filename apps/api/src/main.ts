import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Logger as PinoLogger } from 'nestjs-pino';
import { KilnConfig, validateKilnConfig } from '@kiln/config';
import { startTracing } from '@kiln/tracing';
import { AppModule } from './app.module.js';
import { setupApp } from './setup-app.js';
import { startMetricsServer } from '@kiln/core';
import { ApiMetrics } from './metrics/api-metrics.js';
import { httpMetricsMiddleware } from './metrics/http-metrics.middleware.js';
import { httpTracingMiddleware } from './tracing/http-tracing.middleware.js';

async function bootstrap(): Promise<void> {
  // Before the app exists, so the Temporal client (CoreModule) is made with the tracing interceptor.
  const tracing = startTracing(validateKilnConfig(process.env), 'kiln-api');
  // bodyParser stays on for JSON; .pt2 uploads are application/octet-stream, which it leaves as a stream.
  // Nest's own start-up lines wait for the structured logger (and are written even if the start fails).
  const app = await NestFactory.create(AppModule, { bufferLogs: true });
  app.useLogger(app.get(PinoLogger));
  if (tracing) new Logger('Kiln').log(`traces to ${tracing.url} as ${tracing.serviceName}`);
  const config = app.get(KilnConfig);
  // First of all handlers, so everything a request does runs inside its server span.
  if (tracing) app.use(httpTracingMiddleware());
  // Registered before every other handler so each request Express routes is counted once (the resolve fast
  // path, which bypasses Express, counts its own).
  const metrics = app.get(ApiMetrics);
  app.use(httpMetricsMiddleware(metrics));
  if (config.KILN_API_METRICS_PORT !== 0) {
    const server = await startMetricsServer(metrics.registry, config.KILN_API_METRICS_PORT, config.KILN_METRICS_HOST);
    process.once('beforeExit', () => server.close());
    new Logger('Kiln').log(`metrics at http://${config.KILN_METRICS_HOST}:${config.KILN_API_METRICS_PORT}/metrics`);
  }
  setupApp(app);
  // Local mode listens on loopback only unless KILN_API_HOST says otherwise (AdminTokenCheck has already refused
  // the default admin token outside local mode).
  await app.listen(config.KILN_API_PORT, config.apiHost);
  new Logger('Kiln').log(
    `API listening on http://${config.apiHost}:${config.KILN_API_PORT} (OpenAPI at /docs)` +
      (config.KILN_LOCAL_MODE ? ' in local mode' : ''),
  );
}

await bootstrap();
