import { KilnConfig } from '@kiln/config';
import { loadPublicSigningKey, type PublicSigningKey } from '@kiln/signing';

/** The public half of the signing key (the API's only key material), as GET /v1/signing-keys publishes it. */
export class SigningPublicKey {
  private constructor(readonly key: PublicSigningKey) {}

  static async load(config: KilnConfig): Promise<SigningPublicKey> {
    return new SigningPublicKey(
      await loadPublicSigningKey(config.resolvePath(config.KILN_SIGNING_PUBLIC_KEY_FILE), {
        privateKeyFile: config.resolvePath(config.KILN_SIGNING_KEY_FILE),
        createIfMissing: config.KILN_SIGNING_KEY_CREATE,
      }),
    );
  }
}
