import { Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { DEFAULT_ADMIN_TOKEN, KilnConfig, MIN_ADMIN_TOKEN_LENGTH } from '@kiln/config';

/**
 * The API refuses to start with the well-known default admin token, or a short one, unless local mode is on
 * (KILN_LOCAL_MODE=true: scripts/stack.sh and the tests set it; production leaves it off). Whoever holds the admin
 * token creates tenants and keys, so a default would be an open door on any reachable host.
 */
export function adminTokenProblem(config: KilnConfig): string | null {
  if (config.KILN_LOCAL_MODE) return null;
  if (config.KILN_ADMIN_TOKEN === DEFAULT_ADMIN_TOKEN) {
    return `KILN_ADMIN_TOKEN is the public default "${DEFAULT_ADMIN_TOKEN}". Set a secret of at least ${MIN_ADMIN_TOKEN_LENGTH} characters (e.g. \`openssl rand -hex 32\`), or KILN_LOCAL_MODE=true on a developer machine.`;
  }
  if (config.KILN_ADMIN_TOKEN.length < MIN_ADMIN_TOKEN_LENGTH) {
    return `KILN_ADMIN_TOKEN has ${config.KILN_ADMIN_TOKEN.length} characters; outside local mode it needs at least ${MIN_ADMIN_TOKEN_LENGTH} (e.g. \`openssl rand -hex 32\`).`;
  }
  return null;
}

/** Runs adminTokenProblem() when the application starts, however it is started (main.ts, the tests, benches). */
@Injectable()
export class AdminTokenCheck implements OnApplicationBootstrap {
  constructor(private readonly config: KilnConfig) {}

  onApplicationBootstrap(): void {
    const problem = adminTokenProblem(this.config);
    if (problem) throw new Error(`Refusing to start: ${problem}`);
  }
}
