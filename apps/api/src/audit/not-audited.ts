import { SetMetadata } from '@nestjs/common';

export const NOT_AUDITED = 'kiln:not-audited';

/** A POST that changes nothing a tenant manages (a resolution, an events token) or a device's telemetry stream. */
export const NotAudited = (): MethodDecorator & ClassDecorator => SetMetadata(NOT_AUDITED, true);
