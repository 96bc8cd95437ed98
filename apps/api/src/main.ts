import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { KilnConfig } from '@kiln/config';
import { AppModule } from './app.module.js';
import { setupApp } from './setup-app.js';

async function bootstrap(): Promise<void> {
  // bodyParser stays on for JSON; .pt2 uploads are application/octet-stream, which it leaves as a stream.
  const app = await NestFactory.create(AppModule, { bufferLogs: false });
  setupApp(app);
  const config = app.get(KilnConfig);
  // Local mode listens on loopback only unless KILN_API_HOST says otherwise (AdminTokenCheck has already refused
  // the default admin token outside local mode).
  await app.listen(config.KILN_API_PORT, config.apiHost);
  new Logger('Kiln').log(
    `API listening on http://${config.apiHost}:${config.KILN_API_PORT} (OpenAPI at /docs)` +
      (config.KILN_LOCAL_MODE ? ' in local mode' : ''),
  );
}

await bootstrap();
