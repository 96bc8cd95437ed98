import { Module } from '@nestjs/common';
import { KilnConfig } from '@kiln/config';
import { PortableSigningService } from './portable-signing.service.js';
import { SigningPublicKey } from './signing-key.js';

/** Signatures as the API sees them: the public key it publishes, and asking the orchestrator to sign. */
@Module({
  providers: [
    PortableSigningService,
    { provide: SigningPublicKey, inject: [KilnConfig], useFactory: SigningPublicKey.load },
  ],
  exports: [PortableSigningService, SigningPublicKey],
})
export class PortableSigningModule {}
