import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { KilnExceptionFilter } from './common/kiln-exception.filter.js';
import { serveDashboard } from './dashboard/serve-dashboard.js';
import { kilnValidationPipe } from './common/validation.js';
import { ResolveFastPath } from './resolver/resolve-fast-path.js';

/** Everything main.ts and the tests must configure identically on the Nest application. */
export function setupApp(app: INestApplication): OpenAPIObject {
  app.useGlobalPipes(kilnValidationPipe());
  app.useGlobalFilters(new KilnExceptionFilter());
  app.enableShutdownHooks();
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Kiln API')
      .setDescription(
        'Compile-as-a-service for PyTorch: upload a torch.export .pt2, compile it with AOTInductor for each ' +
          'hardware target, download verified artifacts. Errors are `{ error: { code, message, details? } }`.',
      )
      .setVersion('1')
      .addBearerAuth()
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'openapi.json' });
  // The dashboard (apps/web) at `/`; it never shadows /v1/*, /docs or /openapi.json.
  serveDashboard(app);
  ResolveFastPath.install(app);
  return document;
}
