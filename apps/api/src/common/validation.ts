import { type ArgumentMetadata, ValidationPipe, type ValidationError } from '@nestjs/common';
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

class KilnValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    refuseNulCharacters(value);
    return dropNullFields(await super.transform(value, metadata));
  }
}

/** The one error a refused request body or query gets: VALIDATION_FAILED with every problem, nested ones by path. */
export function validationFailure(errors: ValidationError[]): KilnError {
  const problems = flatten(errors);
  return new KilnError(ErrorCode.VALIDATION_FAILED, `Invalid request: ${problems.join('; ')}`, { problems });
}

/** What the pipe and the resolver's fast path both validate with: unknown fields are refused. */
export const VALIDATOR_OPTIONS = { whitelist: true, forbidNonWhitelisted: true } as const;

/** Validation at the edge: unknown fields are refused, and errors carry VALIDATION_FAILED. */
export function kilnValidationPipe(): ValidationPipe {
  return new KilnValidationPipe({ ...VALIDATOR_OPTIONS, transform: true, exceptionFactory: validationFailure });
}

/** Version numbers are PostgreSQL integers: a larger number can name no version (and must not reach the database). */
export const MAX_VERSION_NUMBER = 2_147_483_647;
