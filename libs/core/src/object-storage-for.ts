import type { KilnConfig } from '@kiln/config';
import { ObjectStorage } from '@kiln/storage';

/** The S3 client of the configured endpoint and bucket (the API's and the worker's, and the tests' and benches'). */
export function objectStorageFor(config: KilnConfig): ObjectStorage {
  return new ObjectStorage({
    endpoint: config.S3_ENDPOINT,
    region: config.S3_REGION,
    bucket: config.S3_BUCKET,
    accessKeyId: config.S3_ACCESS_KEY_ID,
    secretAccessKey: config.S3_SECRET_ACCESS_KEY,
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
  });
}
