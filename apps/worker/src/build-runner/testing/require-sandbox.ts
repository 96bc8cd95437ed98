import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { missingWalls } from '../sandbox-plan.js';
import { probeSandboxHost, type SandboxHost } from '../sandbox-probe.js';

/**
 * The build sandbox as this host offers it, for tests that run real sandboxed processes. A build worker refuses
 * to build without every wall, so these tests REQUIRE them: on a host without (no root, no bubblewrap, no cgroup
 * memory/pids controller) they fail with the reason. Only with the explicit local opt-out KILN_SANDBOX=
 * insecure-local do they skip instead, visibly, with the reason.
 */
export async function requireFullSandbox(t: TestContext): Promise<SandboxHost | null> {
  const host = await probeSandboxHost();
  const missing = missingWalls(host);
  if (missing.length === 0) return host;
  const why = `this host cannot put up the build sandbox: ${missing.map((m) => `${m.wall} (${m.why})`).join('; ')}`;
  if (process.env.KILN_SANDBOX === 'insecure-local') {
    t.skip(`${why} [KILN_SANDBOX=insecure-local]`);
    return null;
  }
  assert.fail(`${why}. Install bubblewrap, run as root with cgroups, or set KILN_SANDBOX=insecure-local to skip.`);
}
