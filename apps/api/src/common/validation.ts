import { ValidationPipe, type ValidationError } from '@nestjs/common';
import { ErrorCode, KilnError } from '@kiln/contracts';

function flatten(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((e) => {
    const path = parent ? `${parent}.${e.property}` : e.property;
    return [...Object.values(e.constraints ?? {}).map((m) => `${path}: ${m}`), ...flatten(e.children ?? [], path)];
  });
}

/** Validation at the edge: unknown fields are refused, and errors carry VALIDATION_FAILED. */
export function kilnValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    exceptionFactory: (errors) => {
      const problems = flatten(errors);
      return new KilnError(ErrorCode.VALIDATION_FAILED, `Invalid request: ${problems.join('; ')}`, { problems });
    },
  });
}
