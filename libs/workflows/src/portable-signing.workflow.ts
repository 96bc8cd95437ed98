import { proxyActivities } from '@temporalio/workflow';
import { ORCHESTRATOR_TASK_QUEUE } from './compile-model.contracts.js';
import type { PortableSigningActivities, SignPortableInput } from './portable-signing.contracts.js';

/**
 * Signs a version's portable graph (the fallback every device may get) where the signing key lives: the API records
 * the version and starts this; the resolver serves the fallback unsigned (devices refuse it) until it has run.
 */
export async function signPortableWorkflow(input: SignPortableInput): Promise<void> {
  const { signPortable } = proxyActivities<PortableSigningActivities>({
    taskQueue: ORCHESTRATOR_TASK_QUEUE,
    // Re-reads the whole archive from S3: minutes for a multi-GB model.
    startToCloseTimeout: '1 hour',
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '1 minute', backoffCoefficient: 2 },
  });
  await signPortable(input);
}
