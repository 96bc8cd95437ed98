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
  await app.listen(config.KILN_API_PORT, '0.0.0.0');
  new Logger('Kiln').log(`API listening on http://127.0.0.1:${config.KILN_API_PORT} (OpenAPI at /docs)`);
}

await bootstrap();
