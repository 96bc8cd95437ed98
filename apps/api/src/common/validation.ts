import { type ArgumentMetadata, type Type, ValidationPipe, type ValidationError } from '@nestjs/common';
import { ErrorCode, KilnError } from '@kiln/contracts';

function flatten(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((e) => {
    const path = parent ? `${parent}.${e.property}` : e.property;
    return [...Object.values(e.constraints ?? {}).map((m) => `${path}: ${m}`), ...flatten(e.children ?? [], path)];
  });
}

/**
 * @IsOptional lets null through as well as a missing field (and the OpenAPI document says so): for a request DTO
 * both mean "not given". Dropping the nulls of DTO instances (and of nested DTOs) here means no service ever meets
 * a null it did not expect. Free-form objects inside a DTO (a device fingerprint, where `torch: null` means "no
 * torch") are plain objects, not DTO instances, and are left as they are.
 */
export function dropNullFields(value: unknown): unknown {
  if (Array.isArray(value)) {
    for (const item of value) dropNullFields(item);
    return value;
  }
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) === Object.prototype) return value;
  for (const [key, field] of Object.entries(value)) {
    if (field === null) delete (value as Record<string, unknown>)[key];
    else dropNullFields(field);
  }
  return value;
}

/**
 * Where in a request value a string holds a NUL character, or null. PostgreSQL text cannot store NUL (the insert
 * fails), and no name, file name or key of Kiln's has a use for one: such input is refused at the edge.
 */
export function findNulCharacter(value: unknown, at = ''): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? at || '(value)' : null;
  if (typeof value !== 'object' || value === null) return null;
  for (const [key, field] of Object.entries(value)) {
    if (key.includes('\u0000')) return at ? `${at}.${key}` : key;
    const found = findNulCharacter(field, at ? `${at}.${key}` : key);
    if (found) return found;
  }
  return null;
}

export function refuseNulCharacters(value: unknown): void {
  const where = findNulCharacter(value);
  if (where) {
    const problems = [`${where}: must not contain NUL characters`];
    throw new KilnError(ErrorCode.VALIDATION_FAILED, `Invalid request: ${problems[0]}`, { problems });
  }
}

/** The one error a refused request body or query gets: VALIDATION_FAILED with every problem, nested ones by path. */
export function validationFailure(errors: ValidationError[]): KilnError {
  const problems = flatten(errors);
  return new KilnError(ErrorCode.VALIDATION_FAILED, `Invalid request: ${problems.join('; ')}`, { problems });
}

function notAJsonObject(): KilnError {
  return new KilnError(ErrorCode.VALIDATION_FAILED, 'The request body must be a JSON object.');
}

/**
 * A request body's JSON text as Express's JSON parser (body-parser, strict) reads it: an object or an array, a
 * leading byte order mark skipped, an empty body an empty object. Anything else is one of two failures, in Kiln's
 * words rather than the JavaScript engine's (whose wording changes between Node versions and quotes the input).
 * The resolver's fast path parses with it, and the exception filter answers Express's parse failures with it, so
 * both say the same for the same bytes.
 */
export function parseJsonBody(text: string): object {
  const json = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (json.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new KilnError(ErrorCode.VALIDATION_FAILED, 'The request body is not valid JSON.');
  }
  if (typeof value !== 'object' || value === null) throw notAJsonObject();
  return value;
}

/**
 * Nest's ValidationPipe (class-transformer, class-validator, its handling of nil, array gaps and `__proto__` keys)
 * with Kiln's options, NUL characters refused before it, nulls dropped after it, and an array where a DTO body
 * belongs refused in the same words as any other non-object body.
 */
class KilnValidationPipe extends ValidationPipe {
  constructor() {
    // Unknown fields are refused, not silently stripped.
    super({ whitelist: true, forbidNonWhitelisted: true, transform: true, exceptionFactory: validationFailure });
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    refuseNulCharacters(value);
    if (metadata.type === 'body' && Array.isArray(value) && this.toValidate(metadata)) throw notAJsonObject();
    return dropNullFields(await super.transform(value, metadata));
  }
}

const requestValidation = new KilnValidationPipe();

/**
 * The one validation path: a request value (a parsed body, a query) → its DTO, or the one VALIDATION_FAILED error.
 * The global pipe is this; the resolver's fast path, which runs in front of Nest, calls it through parseJsonRequest.
 */
export function validateRequest(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
  return requestValidation.transform(value, metadata);
}

/** A JSON request body → its DTO, or the failure the Nest route answers for the same bytes. */
export async function parseJsonRequest<T>(metatype: Type<T>, text: string): Promise<T> {
  return (await validateRequest(parseJsonBody(text), { type: 'body', metatype })) as T;
}

/** Validation at the edge, for every route: validateRequest. */
export function kilnValidationPipe(): ValidationPipe {
  return requestValidation;
}

/** Version numbers are PostgreSQL integers: a larger number can name no version (and must not reach the database). */
export const MAX_VERSION_NUMBER = 2_147_483_647;
