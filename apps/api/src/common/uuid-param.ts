import { Param, ParseUUIDPipe } from '@nestjs/common';
import { ErrorCode, KilnError } from '@kiln/contracts';

/** A path parameter that must be a uuid; anything else is a 404 (it cannot name a record). */
export const UuidParam = (name: string): ParameterDecorator =>
  Param(
    name,
    new ParseUUIDPipe({
      exceptionFactory: () => new KilnError(ErrorCode.NOT_FOUND, `No such ${name.replace(/Id$/, '')}.`),
    }),
  );
