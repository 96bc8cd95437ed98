import type { INestApplication } from '@nestjs/common';
import { SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { KilnConfig } from '@kiln/config';
import { KilnExceptionFilter } from './common/kiln-exception.filter.js';
import { buildOpenApiDocument, methodNotAllowed } from './common/openapi-document.js';
import { serveDashboard } from './dashboard/serve-dashboard.js';
import { kilnValidationPipe } from './common/validation.js';
import { ResolveFastPath } from './resolver/resolve-fast-path.js';

/** Everything main.ts (and anything else that builds the API) configures on the Nest application. */
export function setupApp(app: INestApplication): OpenAPIObject {
  app.useGlobalPipes(kilnValidationPipe());
  app.useGlobalFilters(new KilnExceptionFilter());
  app.enableShutdownHooks();
  const document = buildOpenApiDocument(app);
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'openapi.json' });
  methodNotAllowed(app, document);
  // The dashboard (apps/web) at `/`; it never shadows /v1/*, /docs or /openapi.json.
  const config = app.get(KilnConfig);
  serveDashboard(app, config.resolvePath(config.KILN_DASHBOARD_DIR));
  ResolveFastPath.install(app);
  return document;
}
