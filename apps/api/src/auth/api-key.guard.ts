import { timingSafeEqual } from 'node:crypto';
import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { KilnConfig } from '@kiln/config';
import type { ApiKeyRole } from '@kiln/database';
import { ADMIN_ROUTE, type AuthContext, PUBLIC_ROUTE, ROLES } from './auth-context.js';
import { ApiKeysService } from './api-keys.service.js';
import { RateLimitService } from '../fair-use/rate-limit.service.js';

/**
 * Global guard: every route needs a tenant API key (`Authorization: Bearer <key>` or `X-Api-Key`), except
 * @Public routes and @AdminOnly routes (operator token). A key passes only routes whose @Roles name its role. Each key
 * is rate-limited (RateLimitService: 429 RATE_LIMITED with Retry-After).
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly apiKeys: ApiKeysService,
    private readonly rateLimits: RateLimitService,
    private readonly config: KilnConfig,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const flag = (key: string): boolean =>
      this.reflector.getAllAndOverride<boolean>(key, [context.getHandler(), context.getClass()]) === true;
    if (flag(PUBLIC_ROUTE)) return true;
    const req = context.switchToHttp().getRequest<Request & { auth?: AuthContext }>();
    const presented = presentedKey(req);
    if (!presented) throw new KilnError(ErrorCode.UNAUTHENTICATED, 'Missing API key (Authorization: Bearer <key>).');

    if (flag(ADMIN_ROUTE)) {
      const a = Buffer.from(presented);
      const b = Buffer.from(this.config.KILN_ADMIN_TOKEN);
      if (a.length !== b.length || !timingSafeEqual(a, b)) {
        throw new KilnError(ErrorCode.UNAUTHENTICATED, 'Invalid admin token.');
      }
      return true;
    }
    const auth = await this.apiKeys.authenticate(presented);
    if (!auth) throw new KilnError(ErrorCode.UNAUTHENTICATED, 'Invalid or revoked API key.');
    const roles = this.reflector.getAllAndOverride<ApiKeyRole[] | undefined>(ROLES, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!roles?.includes(auth.role)) {
      throw new KilnError(
        ErrorCode.FORBIDDEN,
        auth.role === 'device'
          ? 'Device tokens can only resolve, download artifacts and report telemetry.'
          : `A ${auth.role} key may not do this; it needs one of: ${(roles ?? []).join(', ') || 'none'}.`,
        { role: auth.role, allowedRoles: roles ?? [] },
      );
    }
    await this.rateLimits.check(auth.keyId, auth.rateLimitPerMinute);
    req.auth = auth;
    return true;
  }
}

/** The key a request presents: `Authorization: Bearer <key>` or `X-Api-Key: <key>`. */
export function presentedKey(req: Pick<Request, 'headers'>): string | null {
  const header = req.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice('Bearer '.length).trim();
  const apiKey = req.headers['x-api-key'];
  return typeof apiKey === 'string' ? apiKey.trim() : null;
}
