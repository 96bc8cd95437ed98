import { createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import type { ApiKeyKind } from '@kiln/database';

/** Who is calling: resolved from the API key by ApiKeyGuard. Every service call is scoped by tenantId. */
export interface AuthContext {
  tenantId: string;
  keyId: string;
  kind: ApiKeyKind;
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
