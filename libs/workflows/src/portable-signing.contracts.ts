// Types shared by the portable-signing workflow, its activity and the API that starts it (workflow-sandbox safe).

export const SIGN_PORTABLE_WORKFLOW = 'signPortableWorkflow';

/** One signing per version: starting it again while it runs, or after it signed, does nothing new. */
export const signPortableWorkflowId = (versionId: string): string => `sign-portable-${versionId}`;

export interface SignPortableInput {
  tenantId: string;
  versionId: string;
}

/** On the orchestrator queue, next to artifact signing: the only holder of the private key. */
export interface PortableSigningActivities {
  /**
   * Re-hashes the version's stored portable archive, writes its manifest and signs it; records the signature on the
   * version (once). Idempotent: the manifest's bytes are fixed by the version (signedAt = its creation time).
   */
  signPortable(input: SignPortableInput): Promise<void>;
}
