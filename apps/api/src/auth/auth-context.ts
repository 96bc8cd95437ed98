import { createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import { ALL_MODELS, type ApiKeyKind, type ApiKeyRole } from '@kiln/database';

/** Who is calling: resolved from the API key by ApiKeyGuard. Every service call is scoped by tenantId. */
export interface AuthContext {
  tenantId: string;
  keyId: string;
  kind: ApiKeyKind;
  /** What the key may do: each route names the roles it admits (@Roles). */
  role: ApiKeyRole;
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
export const ROLES = 'kiln:roles';

/** No key needed (health, OpenAPI document). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(PUBLIC_ROUTE, true);
/** Needs the operator's admin token instead of a tenant key. */
export const AdminOnly = (): MethodDecorator & ClassDecorator => SetMetadata(ADMIN_ROUTE, true);
/**
 * The roles of tenant keys that may call this route; every other role is refused with 403 FORBIDDEN, and a route
 * that names none admits no tenant key at all (fail closed). docs/security.md has the matrix, which
 * test/security/roles.e2e-spec.ts checks against every route.
 */
export const Roles = (...roles: ApiKeyRole[]): MethodDecorator & ClassDecorator => SetMetadata(ROLES, roles);

/** The roles of the matrix by what they do. */
export const READERS: ApiKeyRole[] = ['owner', 'developer', 'viewer'];
export const WRITERS: ApiKeyRole[] = ['owner', 'developer'];
export const OWNERS: ApiKeyRole[] = ['owner'];
export const EVERY_ROLE: ApiKeyRole[] = ['owner', 'developer', 'viewer', 'device'];

export const Auth = createParamDecorator((_data: unknown, ctx: ExecutionContext): AuthContext => {
  const req = ctx.switchToHttp().getRequest<{ auth?: AuthContext }>();
  if (!req.auth) throw new Error('Auth used on a route without ApiKeyGuard');
  return req.auth;
});
