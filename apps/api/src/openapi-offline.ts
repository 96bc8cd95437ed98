import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { OpenAPIObject } from '@nestjs/swagger';
import { AppModule } from './app.module.js';
import { buildOpenApiDocument } from './common/openapi-document.js';

/**
 * The API's OpenAPI document without a server, a database or Temporal: Nest's preview mode resolves the module
 * graph (which is all @nestjs/swagger scans: controllers, routes, decorators) but instantiates no provider, so no
 * connection is opened. test/sdk.e2e-spec.ts checks that the running API serves exactly this document.
 */
export async function buildOfflineOpenApiDocument(): Promise<OpenAPIObject> {
  const app = await NestFactory.create(AppModule, { preview: true, logger: false, abortOnError: false });
  try {
    return buildOpenApiDocument(app);
  } finally {
    await app.close();
  }
}
