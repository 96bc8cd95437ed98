import {
  type CallHandler,
  type ExecutionContext,
  HttpException,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { catchError, from, mergeMap, type Observable } from 'rxjs';
import { KilnError } from '@kiln/contracts';
import type { AuthContext } from '../auth/auth-context.js';
import { ADMIN_ROUTE } from '../auth/auth-context.js';
import { httpStatusFor } from '../common/http-status-for-code.js';
import { AuditService } from './audit.service.js';
import { NOT_AUDITED } from './not-audited.js';

const MUTATIONS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Records every mutation that reaches a route (after the guard: who it was is known) in the audit log, once its
 * answer is known, success or error. Calls the guard refused never reach here: they changed nothing. Routes that
 * only look like mutations (POST /v1/resolve, an events token) or that are a device's stream of reports (telemetry,
 * stored as such) are marked @NotAudited.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  constructor(
    private readonly reflector: Reflector,
    private readonly audit: AuditService,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const req = http.getRequest<Request & { auth?: AuthContext }>();
    const targets = [context.getHandler(), context.getClass()];
    if (!MUTATIONS.has(req.method) || this.reflector.getAllAndOverride<boolean>(NOT_AUDITED, targets)) {
      return next.handle();
    }
    const admin = this.reflector.getAllAndOverride<boolean>(ADMIN_ROUTE, targets) === true;
    const record = (status: number, errorCode: string | null, body: unknown): Promise<void> => {
      const targetIds = idsOf(req.params);
      const resultIds = idsOf(body);
      return this.audit.record({
        tenantId: req.auth?.tenantId ?? targetIds.tenantId ?? (admin ? (resultIds.id ?? null) : null),
        actor: admin ? 'admin' : 'key',
        keyId: req.auth?.keyId ?? null,
        role: req.auth?.role ?? null,
        action: `${req.method} ${(req.route as { path?: string } | undefined)?.path ?? req.path}`,
        targetIds,
        resultIds,
        status,
        errorCode,
        ip: req.ip ?? '',
        userAgent: String(req.headers['user-agent'] ?? '').slice(0, 500),
      });
    };
    return next.handle().pipe(
      mergeMap((body: unknown) => from(record(http.getResponse<Response>().statusCode, null, body).then(() => body))),
      catchError((err: unknown) => {
        const status =
          err instanceof KilnError ? httpStatusFor(err.code) : err instanceof HttpException ? err.getStatus() : 500;
        return from(
          record(status, err instanceof KilnError ? err.code : null, undefined).then(() => {
            throw err;
          }),
        );
      }),
    );
  }
}

/** The uuid-valued fields of a value, one level deep, and of `previous`/`apiKey` (a rotation, a new tenant). */
function idsOf(value: unknown): Record<string, string> {
  const ids: Record<string, string> = {};
  if (typeof value !== 'object' || value === null) return ids;
  for (const [key, field] of Object.entries(value)) {
    if (typeof field === 'string' && UUID.test(field)) ids[key] = field;
    else if ((key === 'previous' || key === 'apiKey') && typeof field === 'object' && field !== null) {
      const id = (field as { id?: unknown }).id;
      if (typeof id === 'string' && UUID.test(id)) ids[`${key}Id`] = id;
    }
  }
  return ids;
}
