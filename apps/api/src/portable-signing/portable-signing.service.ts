import { Injectable, Logger } from '@nestjs/common';
import { Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { ModelVersionEntity } from '@kiln/database';
import {
  ORCHESTRATOR_TASK_QUEUE,
  SIGN_PORTABLE_WORKFLOW,
  type SignPortableInput,
  signPortableWorkflowId,
} from '@kiln/temporal';

/**
 * Asks the orchestrator to sign a version's portable graph (the fallback devices may get). The API holds no private
 * key: it starts the signing workflow when it records a version, and again (harmlessly: one workflow id per
 * version) whenever the resolver meets a version still unsigned. Until the signature is recorded the fallback is
 * served without one, and devices refuse it (python/runtime/kiln_runtime/portable_trust.py).
 */
@Injectable()
export class PortableSigningService {
  private readonly logger = new Logger(PortableSigningService.name);

  constructor(private readonly temporal: Client) {}

  /** Starts the signing unless it is running or ran; never waits for it, never fails the caller. */
  async requestSignature(version: Pick<ModelVersionEntity, 'id' | 'tenantId' | 'portableSignature'>): Promise<void> {
    if (version.portableSignature !== '') return;
    const input: SignPortableInput = { tenantId: version.tenantId, versionId: version.id };
    try {
      await this.temporal.workflow.start(SIGN_PORTABLE_WORKFLOW, {
        taskQueue: ORCHESTRATOR_TASK_QUEUE,
        workflowId: signPortableWorkflowId(version.id),
        args: [input],
        // A finished signing (failed for good or succeeded) may be started again: the activity is idempotent.
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return;
      this.logger.warn(`could not ask for the portable signature of version ${version.id}: ${String(err)}`);
    }
  }
}
