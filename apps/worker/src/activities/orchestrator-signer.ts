import type { KilnConfig } from '@kiln/config';
import { ArtifactSigner, writePublicKeyFile } from '@kiln/signing';

export const ORCHESTRATOR_SIGNER = Symbol('ORCHESTRATOR_SIGNER');

/**
 * The signing key, loaded only where the orchestrator role runs: a build-only worker never reads the key file (and
 * a deployment gives its hosts none). `get()` fails loudly should anything else ever try to sign.
 */
export class OrchestratorSigner {
  private constructor(private readonly signer: ArtifactSigner | null) {}

  static async load(config: KilnConfig): Promise<OrchestratorSigner> {
    if (!config.KILN_WORKER_ROLES.includes('orchestrator')) return new OrchestratorSigner(null);
    const signer = await ArtifactSigner.fromFile(
      config.resolvePath(config.KILN_SIGNING_KEY_FILE),
      config.KILN_SIGNING_KEY_CREATE,
    );
    // The API reads the public half from here (local mode; production provisions both files).
    if (config.KILN_SIGNING_KEY_CREATE) {
      await writePublicKeyFile(config.resolvePath(config.KILN_SIGNING_PUBLIC_KEY_FILE), signer.publicKey);
    }
    return new OrchestratorSigner(signer);
  }

  get(): ArtifactSigner {
    if (!this.signer) throw new Error('this worker holds no signing key (its orchestrator role is off)');
    return this.signer;
  }
}
