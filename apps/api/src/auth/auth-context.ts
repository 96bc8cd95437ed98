import { createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import { ALL_MODELS, type ApiKeyKind } from '@kiln/database';

/** Who is calling: resolved from the API key by ApiKeyGuard. Every service call is scoped by tenantId. */
export interface AuthContext {
  tenantId: string;
  keyId: string;
  kind: ApiKeyKind;
  /** Model names this key may reach, or [`*`] (device tokens are enrolled for specific models). */
  modelScope: string[];
  /** The rate limit of this key's tenant (its own, or KILN_RATE_LIMIT_PER_MINUTE). */
  rateLimitPerMinute: number;
}

/** Whether a key with this scope may reach the model of this name. */
export function scopeAllows(modelScope: readonly string[], modelName: string): boolean {
  return modelScope.includes(ALL_MODELS) || modelScope.includes(modelName);
}

export const PUBLIC_ROUTE = 'kiln:public';
export const ADMIN_ROUTE = 'kiln:admin';
export const DEVICE_ALLOWED = 'kiln:device-allowed';

/** No key needed (health, OpenAPI document). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(PUBLIC_ROUTE, true);
/** Needs the operator's admin token instead of a tenant key. */
export const AdminOnly = (): MethodDecorator & ClassDecorator => SetMetadata(ADMIN_ROUTE, true);
/** Device tokens may call this route (they may call nothing else). */
export const DeviceAllowed = (): MethodDecorator & ClassDecorator => SetMetadata(DEVICE_ALLOWED, true);

export const Auth = createParamDecorator((_data: unknown, ctx: ExecutionContext): AuthContext => {
  const req = ctx.switchToHttp().getRequest<{ auth?: AuthContext }>();
  if (!req.auth) throw new Error('Auth used on a route without ApiKeyGuard');
  return req.auth;
});
