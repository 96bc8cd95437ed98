import { readFileSync } from 'node:fs';
import type { TLSConfig } from '@temporalio/client';
import type { KilnConfig } from '@kiln/config';

export type TemporalSettings = Pick<
  KilnConfig,
  | 'TEMPORAL_ADDRESS'
  | 'TEMPORAL_TLS_CERT_FILE'
  | 'TEMPORAL_TLS_KEY_FILE'
  | 'TEMPORAL_TLS_CA_FILE'
  | 'TEMPORAL_TLS_SERVER_NAME'
  | 'TEMPORAL_API_KEY'
>;

/**
 * How every Kiln process dials Temporal (the API's client, the worker's client and its native connection): plain
 * TCP to a self-hosted server by default; with a client certificate and key (Temporal Cloud's mTLS; the AWS
 * deployment's temporal_mode = "cloud" puts them in files from Secrets Manager) or an API key, over TLS. The files
 * are read once, at start: a missing or half-configured pair stops the process with the setting's name.
 */
export function temporalConnectionOptions(settings: TemporalSettings): {
  address: string;
  tls?: TLSConfig;
  apiKey?: string;
} {
  const { TEMPORAL_TLS_CERT_FILE: cert, TEMPORAL_TLS_KEY_FILE: key } = settings;
  if (Boolean(cert) !== Boolean(key)) {
    throw new Error('TEMPORAL_TLS_CERT_FILE and TEMPORAL_TLS_KEY_FILE go together: set both (mTLS) or neither.');
  }
  const wantsTls = Boolean(cert || settings.TEMPORAL_TLS_CA_FILE || settings.TEMPORAL_API_KEY);
  if (!wantsTls) return { address: settings.TEMPORAL_ADDRESS };
  const tls: TLSConfig = {
    ...(cert && key
      ? { clientCertPair: { crt: read(cert, 'TEMPORAL_TLS_CERT_FILE'), key: read(key, 'TEMPORAL_TLS_KEY_FILE') } }
      : {}),
    ...(settings.TEMPORAL_TLS_CA_FILE
      ? { serverRootCACertificate: read(settings.TEMPORAL_TLS_CA_FILE, 'TEMPORAL_TLS_CA_FILE') }
      : {}),
    ...(settings.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: settings.TEMPORAL_TLS_SERVER_NAME } : {}),
  };
  return {
    address: settings.TEMPORAL_ADDRESS,
    tls,
    ...(settings.TEMPORAL_API_KEY ? { apiKey: settings.TEMPORAL_API_KEY } : {}),
  };
}

function read(file: string, setting: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${setting}=${file} cannot be read: ${(err as Error).message}`);
  }
}
