import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Response } from 'express';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { httpStatusFor, retryAfterHeader } from './http-status-for-code.js';
import { parseJsonBody } from './validation.js';

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
}

const CODE_FOR_HTTP_STATUS: Partial<Record<number, ErrorCode>> = {
  [HttpStatus.BAD_REQUEST]: ErrorCode.VALIDATION_FAILED,
  [HttpStatus.UNAUTHORIZED]: ErrorCode.UNAUTHENTICATED,
  [HttpStatus.FORBIDDEN]: ErrorCode.FORBIDDEN,
  [HttpStatus.NOT_FOUND]: ErrorCode.NOT_FOUND,
  [HttpStatus.METHOD_NOT_ALLOWED]: ErrorCode.METHOD_NOT_ALLOWED,
  [HttpStatus.CONFLICT]: ErrorCode.CONFLICT,
  [HttpStatus.PAYLOAD_TOO_LARGE]: ErrorCode.PAYLOAD_TOO_LARGE,
  [HttpStatus.UNSUPPORTED_MEDIA_TYPE]: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
};

/** Every error leaves the API as `{ error: { code, message, details? } }` with the code's HTTP status. */
@Catch()
export class KilnExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const { status, body } = this.toResponse(exception);
    if (status >= 500)
      this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : exception);
    if (res.headersSent) {
      res.end();
      return;
    }
    const retryAfter = retryAfterHeader(body.error.details);
    if (retryAfter) res.setHeader('Retry-After', retryAfter);
    res.status(status).json(body);
  }

  private toResponse(exception: unknown): { status: number; body: ErrorBody } {
    if (exception instanceof KilnError) {
      return {
        status: httpStatusFor(exception.code),
        body: { error: { code: exception.code, message: exception.message, details: exception.details } },
      };
    }
    // Express's JSON parser refused the body: the same failure, in the same words, as the resolver's fast path gives
    // for the same bytes (it parses with parseJsonBody too).
    const failure = jsonBodyFailure(exception);
    if (failure) return this.toResponse(failure);
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const response = exception.getResponse();
      const message =
        typeof response === 'object' && response !== null && 'message' in response
          ? String(response.message)
          : exception.message;
      const code = CODE_FOR_HTTP_STATUS[status] ?? (status >= 500 ? ErrorCode.INTERNAL : ErrorCode.VALIDATION_FAILED);
      return { status, body: { error: { code, message } } };
    }
    // Malformed JSON bodies and similar parser errors carry a status but are not HttpExceptions.
    const maybeStatus = (exception as { status?: unknown })?.status;
    if (typeof maybeStatus === 'number' && maybeStatus >= 400 && maybeStatus < 500) {
      const code = CODE_FOR_HTTP_STATUS[maybeStatus] ?? ErrorCode.VALIDATION_FAILED;
      return { status: maybeStatus, body: { error: { code, message: (exception as Error).message } } };
    }
    return {
      status: HttpStatus.INTERNAL_SERVER_ERROR,
      body: { error: { code: ErrorCode.INTERNAL, message: 'Internal error; it has been logged.' } },
    };
  }
}

/**
 * Express's JSON parser (body-parser) failed: its error, which Nest's adapter wraps in a BadRequestException as the
 * `cause`, carries the decoded body, and parseJsonBody says what is wrong with it.
 */
function jsonBodyFailure(exception: unknown): KilnError | null {
  const parserError = exception instanceof HttpException ? exception.cause : exception;
  const { type, body } = (parserError ?? {}) as { type?: unknown; body?: unknown };
  if (type !== 'entity.parse.failed' || typeof body !== 'string') return null;
  try {
    parseJsonBody(body);
  } catch (failure) {
    if (failure instanceof KilnError) return failure;
  }
  return null;
}
