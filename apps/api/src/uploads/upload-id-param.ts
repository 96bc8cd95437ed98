import { Param, ParseUUIDPipe } from '@nestjs/common';
import { ErrorCode, KilnError } from '@kiln/contracts';

/** The `:uploadId` path parameter: anything but a uuid names no upload (UPLOAD_NOT_FOUND, 404). */
export const UploadIdParam = (): ParameterDecorator =>
  Param(
    'uploadId',
    new ParseUUIDPipe({ exceptionFactory: () => new KilnError(ErrorCode.UPLOAD_NOT_FOUND, 'No such upload.') }),
  );
