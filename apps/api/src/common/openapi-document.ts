import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { validationMetadatasToSchemas } from 'class-validator-jsonschema';
import type { NextFunction, Request, Response } from 'express';
import { ErrorCode } from '@kiln/contracts';

/**
 * The API's OpenAPI document, made to be the whole truth about the API (schemathesis fuzzes every route against
 * it in the test command, test/api-fuzz.e2e-spec.ts):
 * - request constraints come from the class-validator decorators the API validates with (merged in by
 *   class-validator-jsonschema), so the document and the validation cannot disagree;
 * - every operation documents its error answers: any 4xx or 5xx is `ErrorBody`, the one error shape of the API
 *   (the exception filter answers every error so, an unexpected one as 500 INTERNAL);
 * - a documented path asked with a method it does not have answers 405 with `Allow` (methodNotAllowed below).
 */
export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
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
  mergeValidationConstraints(document);
  documentErrors(document);
  return document;
}

/** Keys of a JSON schema that say what a value may be (never its description or example). */
const CONSTRAINT_KEYS = [
  'type',
  'format',
  'pattern',
  'enum',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'uniqueItems',
] as const;

// @nestjs/swagger does not export its OpenAPI types by name; these are the document's own.
type Schema = NonNullable<NonNullable<OpenAPIObject['components']>['schemas']>[string];
type SchemaObject = Exclude<Schema, { $ref: string }>;

function isSchemaObject(s: unknown): s is SchemaObject {
  return typeof s === 'object' && s !== null && !('$ref' in s);
}

function mergeConstraints(into: SchemaObject, from: SchemaObject): void {
  for (const key of CONSTRAINT_KEYS) {
    const value = (from as Record<string, unknown>)[key];
    if (value === undefined) continue;
    // A type the Swagger decorator spelled out (an enum, an object) stays, but an @IsInt narrows 'number'.
    if (key === 'type' && (into.type !== undefined || 'allOf' in into)) {
      if (into.type === 'number' && value === 'integer') into.type = 'integer';
      continue;
    }
    (into as Record<string, unknown>)[key] = value;
  }
  if (isSchemaObject(into.items) && isSchemaObject(from.items)) mergeConstraints(into.items, from.items);
}

/** Adds what each request DTO's class-validator decorators enforce to its schema in the document. */
function mergeValidationConstraints(document: OpenAPIObject): void {
  const validated = validationMetadatasToSchemas({ refPointerPrefix: '#/components/schemas/' }) as Record<
    string,
    SchemaObject
  >;
  const schemas = document.components?.schemas ?? {};
  for (const [name, schema] of Object.entries(schemas)) {
    const rules = validated[name];
    if (!rules || !isSchemaObject(schema)) continue;
    for (const [prop, propRules] of Object.entries(rules.properties ?? {})) {
      const target = schema.properties?.[prop];
      if (isSchemaObject(target) && isSchemaObject(propRules)) mergeConstraints(target, propRules);
    }
    // Required is what the validator requires (@IsOptional makes a field optional), not the decorator's default;
    // and @IsOptional lets null through as well as a missing field.
    const required = (rules.required ?? []).filter((p: string) => schema.properties?.[p] !== undefined);
    if (required.length > 0) schema.required = required;
    else delete schema.required;
    for (const [prop, propSchema] of Object.entries(schema.properties ?? {})) {
      if (required.includes(prop) || !isSchemaObject(propSchema)) continue;
      propSchema.nullable = true;
      // (OpenAPI 3.0: `nullable` does not widen an enum; null must be one of its values.)
      if (propSchema.enum && !propSchema.enum.includes(null))
        propSchema.enum = [...(propSchema.enum as unknown[]), null];
    }
    // forbidNonWhitelisted: a request DTO refuses fields it does not declare.
    schema.additionalProperties = false;
  }
}

export const ERROR_BODY_SCHEMA = 'ErrorBody';

/** Every 4xx and 5xx of every operation is the API's one error shape (a route may document its own, e.g. 503). */
function documentErrors(document: OpenAPIObject): void {
  document.components ??= {};
  document.components.schemas ??= {};
  document.components.schemas[ERROR_BODY_SCHEMA] = {
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: {
          code: { type: 'string', enum: Object.values(ErrorCode) },
          message: { type: 'string' },
          details: { type: 'object', additionalProperties: true },
        },
      },
    },
  };
  const errorResponse = {
    description: 'Bad input, no or a wrong key, not found, conflict, too large, rate limited: `{ error: { code, … } }`',
    content: { 'application/json': { schema: { $ref: `#/components/schemas/${ERROR_BODY_SCHEMA}` } } },
  };
  const serverErrorResponse = {
    description: 'A dependency unavailable, an unexpected failure: `{ error: { code, … } }`',
    content: errorResponse.content,
  };
  for (const item of Object.values(document.paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method];
      if (!operation) continue;
      operation.responses['4XX'] ??= errorResponse;
      operation.responses['5XX'] ??= serverErrorResponse;
      // A JSON body whose fields are all optional may be left out altogether (the API takes it as `{}`).
      const body = operation.requestBody;
      const ref = body && 'content' in body ? body.content['application/json']?.schema : undefined;
      const name = ref && '$ref' in ref ? ref.$ref.split('/').pop() : undefined;
      const schema = name ? document.components?.schemas?.[name] : undefined;
      if (body && 'content' in body && isSchemaObject(schema) && !schema.required?.length) body.required = false;
    }
  }
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/**
 * 405 + Allow for a documented path asked with a method it does not have (Express would say 404: there is such a
 * resource, just not that verb). Installed before the routes; HEAD counts as GET, as Express serves it.
 */
export function methodNotAllowed(app: INestApplication, document: OpenAPIObject): void {
  const routes = Object.entries(document.paths).map(([template, item]) => {
    const pattern = template
      .split('/')
      .map((seg) => (/^\{[^}]+\}$/.test(seg) ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/');
    const methods = HTTP_METHODS.filter((m) => item[m] !== undefined).map((m) => m.toUpperCase());
    if (methods.includes('GET')) methods.push('HEAD');
    return { regex: new RegExp(`^${pattern}/?$`), methods };
  });
  app.use((req: Request, res: Response, next: NextFunction) => {
    const route = routes.find((r) => r.regex.test(req.path));
    if (!route || route.methods.includes(req.method) || req.method === 'OPTIONS') {
      next();
      return;
    }
    res.setHeader('Allow', route.methods.join(', '));
    res.status(405).json({
      error: {
        code: ErrorCode.METHOD_NOT_ALLOWED,
        message: `${req.method} is not allowed on ${req.path}; allowed: ${route.methods.join(', ')}.`,
      },
    });
  });
}
