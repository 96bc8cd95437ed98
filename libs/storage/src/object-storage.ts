import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  NotFound,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { LRUCache } from 'lru-cache';
import { ErrorCode, KilnError } from '@kiln/contracts';

export interface ObjectStorageConfig {
  endpoint: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: boolean;
}

export interface StoredObject {
  key: string;
  size: number;
  sha256: string;
}

/** How the S3 server checks each part of a presigned multipart upload (see presignUploadPart). */
export type PartChecksumAlgorithm = 'sha256' | 'md5';

/** The checksum of one part, base64 of the raw digest: `{ sha256 }` or `{ md5 }`. */
export type PartChecksum = { sha256: string; md5?: undefined } | { md5: string; sha256?: undefined };

/** A part S3 already holds for an unfinished multipart upload. */
export interface StoredPart {
  partNumber: number;
  size: number;
  etag: string;
  /** base64 sha256 of the part, where the server reports it (AWS does for SHA256 uploads; SeaweedFS does not). */
  sha256?: string;
}

export interface PresignedPart {
  url: string;
  /** Headers the client must send exactly as given: they are part of the signature. */
  headers: Record<string, string>;
  expiresAt: string;
}

/** Part size for streamed multipart uploads: memory stays at about partSize × queueSize. */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 2;

/** Counts and hashes bytes as they stream past, and stops the stream once it exceeds a limit. */
class MeteredStream extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly maxBytes: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      done(new KilnError(ErrorCode.PAYLOAD_TOO_LARGE, `Upload exceeds the limit of ${this.maxBytes} bytes.`));
      return;
    }
    this.hash.update(chunk);
    done(null, chunk);
  }
}

/**
 * Kiln's object store: S3 through AWS SDK v3, or any S3-compatible server (SeaweedFS locally).
 * Uploads stream (never buffered whole), reads can be ranged, downloads go through presigned URLs.
 */
export class ObjectStorage {
  readonly client: S3Client;
  readonly bucket: string;
  /**
   * Presigning costs a signature computation per URL and resolvers hand out the same parts to many
   * devices: a URL is reused until half its lifetime is gone, so every URL handed out stays valid for at
   * least half the requested lifetime.
   */
  private readonly presigned = new LRUCache<string, { url: string; expiresAt: number; reuseUntil: number }>({
    max: 100_000,
  });

  constructor(config: ObjectStorageConfig) {
    this.bucket = config.bucket;
    this.client = new S3Client({
      endpoint: config.endpoint,
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
      // The SDK otherwise signs a CRC32 of the EMPTY body into presigned PUT URLs (BadDigest on upload).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (!isNotFound(err)) throw mapS3Error(err, `bucket ${this.bucket}`);
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    }
  }

  /** Streams `body` to `key` as a multipart upload, hashing it on the way; aborts cleanly on error. */
  async putStream(
    key: string,
    body: Readable,
    opts: { maxBytes?: number; contentType?: string; signal?: AbortSignal } = {},
  ): Promise<StoredObject> {
    const meter = new MeteredStream(opts.maxBytes ?? Number.MAX_SAFE_INTEGER);
    const pass = new PassThrough();
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: pass,
        ContentType: opts.contentType ?? 'application/octet-stream',
      },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      leavePartsOnError: false,
    });
    const onAbort = (): void => void upload.abort().catch(() => undefined);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const piping = pipeline(body, meter, pass);
      // If the source fails, abort the upload so no multipart upload is left behind.
      piping.catch(() => void upload.abort().catch(() => undefined));
      await Promise.all([piping, upload.done()]);
    } catch (err) {
      if (err instanceof KilnError) throw err;
      throw mapS3Error(err, key);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    return { key, size: meter.bytes, sha256: meter.hash.digest('hex') };
  }

  async putFile(key: string, path: string, contentType?: string): Promise<StoredObject> {
    const { size } = await stat(path);
    if (size < PART_SIZE) {
      const hash = createHash('sha256');
      await pipeline(createReadStream(path), hash);
      const sha256 = hash.digest('hex');
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: createReadStream(path),
          ContentLength: size,
          ContentType: contentType ?? 'application/octet-stream',
        }),
      );
      return { key, size, sha256 };
    }
    return this.putStream(key, createReadStream(path), { contentType });
  }

  async putJson(key: string, value: unknown): Promise<void> {
    await this.putBytes(key, Buffer.from(JSON.stringify(value, null, 2)), 'application/json');
  }

  async putBytes(key: string, body: Buffer, contentType = 'application/octet-stream'): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }),
    );
  }

  async getJson<T>(key: string): Promise<T> {
    const body = await this.getStream(key);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
  }

  /** Size of an object, or null when it does not exist. */
  async size(key: string): Promise<number | null> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return head.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw mapS3Error(err, key);
    }
  }

  /** Every key under a prefix, following continuation tokens. */
  async listKeys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys;
  }

  /** The sha256 and size of a stored object, read through (what a trusted step checks before it vouches for it). */
  async hashObject(key: string, signal?: AbortSignal): Promise<StoredObject | null> {
    let body: Readable;
    try {
      body = await this.getStream(key);
    } catch (err) {
      if (err instanceof KilnError && err.code === ErrorCode.NOT_FOUND) return null;
      throw err;
    }
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (signal?.aborted) {
        body.destroy();
        throw signal.reason;
      }
      hash.update(chunk);
      size += chunk.length;
    }
    return { key, size, sha256: hash.digest('hex') };
  }

  /** A server-side copy (no bytes pass through this process). */
  async copy(fromKey: string, toKey: string): Promise<void> {
    try {
      await this.client.send(
        new CopyObjectCommand({ Bucket: this.bucket, Key: toKey, CopySource: `${this.bucket}/${encodeURI(fromKey)}` }),
      );
    } catch (err) {
      throw mapS3Error(err, fromKey);
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  async getStream(key: string, range?: { offset: number; length: number }): Promise<Readable> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined,
        }),
      );
      return res.Body as Readable;
    } catch (err) {
      throw mapS3Error(err, key);
    }
  }

  /**
   * Starts a multipart upload whose parts clients PUT straight to S3 through presigned URLs. With `sha256`
   * the upload is created with ChecksumAlgorithm=SHA256, so S3 requires (and verifies) a sha256 on every part.
   */
  async createMultipartUpload(
    key: string,
    opts: { checksumAlgorithm: PartChecksumAlgorithm; contentType?: string },
  ): Promise<string> {
    try {
      const res = await this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          ContentType: opts.contentType ?? 'application/octet-stream',
          ChecksumAlgorithm: opts.checksumAlgorithm === 'sha256' ? 'SHA256' : undefined,
        }),
      );
      if (!res.UploadId) throw new Error('S3 returned no UploadId');
      return res.UploadId;
    } catch (err) {
      throw mapS3Error(err, key);
    }
  }

  /**
   * A presigned UploadPart URL bound to the part's exact length and checksum: the signature covers
   * `content-length` and `x-amz-checksum-sha256` (or `content-md5`) as headers, so the client must send
   * them as given, and the S3 server refuses a body whose digest differs (400 BadDigest). The checksum
   * is kept a signed header rather than a query parameter, which AWS S3 and SeaweedFS both verify.
   */
  async presignUploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    opts: { contentLength: number; checksum: PartChecksum; expiresInS: number },
  ): Promise<PresignedPart> {
    const { checksum } = opts;
    const url = await getSignedUrl(
      this.client,
      new UploadPartCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: partNumber,
        ContentLength: opts.contentLength,
        ChecksumSHA256: checksum.sha256,
        ContentMD5: checksum.md5,
      }),
      { expiresIn: opts.expiresInS, unhoistableHeaders: new Set(['x-amz-checksum-sha256', 'content-md5']) },
    );
    const headers: Record<string, string> = { 'content-length': String(opts.contentLength) };
    if (checksum.sha256 !== undefined) headers['x-amz-checksum-sha256'] = checksum.sha256;
    else headers['content-md5'] = checksum.md5;
    return { url, headers, expiresAt: new Date(Date.now() + opts.expiresInS * 1000).toISOString() };
  }

  /**
   * A presigned PutObject URL for one object of known length and sha256. Both are signed headers: the client must
   * send them as given (S3 servers that check `x-amz-checksum-sha256` refuse other bytes; whoever trusts the object
   * later re-hashes it anyway, since not every server checks).
   */
  async presignPut(
    key: string,
    opts: { contentLength: number; sha256Hex: string; expiresInS: number },
  ): Promise<PresignedPart> {
    const checksum = Buffer.from(opts.sha256Hex, 'hex').toString('base64');
    const url = await getSignedUrl(
      this.client,
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        ContentLength: opts.contentLength,
        ChecksumSHA256: checksum,
        ContentType: 'application/octet-stream',
      }),
      { expiresIn: opts.expiresInS, unhoistableHeaders: new Set(['x-amz-checksum-sha256']) },
    );
    return {
      url,
      headers: {
        'content-length': String(opts.contentLength),
        'content-type': 'application/octet-stream',
        'x-amz-checksum-sha256': checksum,
      },
      expiresAt: new Date(Date.now() + opts.expiresInS * 1000).toISOString(),
    };
  }

  /** The parts S3 holds for an unfinished multipart upload (all pages), or null when the upload is gone. */
  async listParts(key: string, uploadId: string): Promise<StoredPart[] | null> {
    const parts: StoredPart[] = [];
    let marker: string | undefined;
    try {
      for (;;) {
        const page = await this.client.send(
          new ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }),
        );
        for (const p of page.Parts ?? []) {
          if (p.PartNumber === undefined) continue;
          parts.push({
            partNumber: p.PartNumber,
            size: p.Size ?? 0,
            etag: p.ETag ?? '',
            ...(p.ChecksumSHA256 ? { sha256: p.ChecksumSHA256 } : {}),
          });
        }
        if (!page.IsTruncated || !page.NextPartNumberMarker) break;
        marker = page.NextPartNumberMarker;
      }
    } catch (err) {
      if (isNoSuchUpload(err)) return null;
      throw mapS3Error(err, `${key} (upload ${uploadId})`);
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  /** Assembles the object from its parts (in part-number order). */
  async completeMultipartUpload(key: string, uploadId: string, parts: StoredPart[]): Promise<void> {
    try {
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: {
            Parts: [...parts]
              .sort((a, b) => a.partNumber - b.partNumber)
              .map((p) => ({ PartNumber: p.partNumber, ETag: p.etag, ChecksumSHA256: p.sha256 })),
          },
        }),
      );
    } catch (err) {
      // A part list S3 does not accept (a part missing, or re-uploaded with other bytes than its checksum).
      if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 400) {
        throw new KilnError(
          ErrorCode.UPLOAD_INCOMPLETE,
          `S3 refused to assemble the parts (${err.name}: ${err.message}); upload them again and complete again.`,
          { s3Code: err.name },
        );
      }
      throw mapS3Error(err, `${key} (upload ${uploadId})`);
    }
  }

  /** Drops an unfinished multipart upload and its parts; false when it was already gone. */
  async abortMultipartUpload(key: string, uploadId: string): Promise<boolean> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
      return true;
    } catch (err) {
      if (isNoSuchUpload(err)) return false;
      throw mapS3Error(err, `${key} (upload ${uploadId})`);
    }
  }

  /** Random access to an object through ranged GETs (what the .pt2 reader validates uploads with). */
  byteSource(key: string, size: number): S3ByteSource {
    return new S3ByteSource(this, key, size);
  }

  async presignGet(
    key: string,
    expiresInS: number,
    downloadName?: string,
  ): Promise<{ url: string; expiresAt: string }> {
    const cacheKey = `${key}\0${expiresInS}\0${downloadName ?? ''}`;
    const now = Date.now();
    const hit = this.presigned.get(cacheKey);
    if (hit && hit.reuseUntil > now) return { url: hit.url, expiresAt: new Date(hit.expiresAt).toISOString() };
    const url = await getSignedUrl(
      this.client,
      new GetObjectCommand({
        Bucket: this.bucket,
        Key: key,
        ResponseContentDisposition: downloadName ? `attachment; filename="${downloadName}"` : undefined,
      }),
      { expiresIn: expiresInS },
    );
    const expiresAt = now + expiresInS * 1000;
    this.presigned.set(cacheKey, { url, expiresAt, reuseUntil: now + (expiresInS * 1000) / 2 });
    return { url, expiresAt: new Date(expiresAt).toISOString() };
  }
}

/** A ranged-GET view of one object; reads are sequential and large in practice (see @kiln/pt2). */
export class S3ByteSource {
  constructor(
    private readonly storage: ObjectStorage,
    private readonly key: string,
    readonly size: number,
  ) {}

  async read(offset: number, length: number): Promise<Buffer> {
    if (length <= 0) return Buffer.alloc(0);
    const end = Math.min(this.size, offset + length);
    const body = await this.storage.getStream(this.key, { offset, length: end - offset });
    // One buffer of the known size, filled as the chunks arrive: collecting the chunks and concatenating them
    // would hold every read twice (the validator sweeps a multi-GB archive in reads of a few MiB).
    const out = Buffer.allocUnsafe(end - offset);
    let filled = 0;
    for await (const chunk of body) {
      const c = chunk as Buffer;
      if (filled + c.length > out.length) throw new Error(`S3 returned more than the ${out.length} bytes asked for`);
      c.copy(out, filled);
      filled += c.length;
    }
    if (filled !== out.length) throw new Error(`S3 returned ${filled} of the ${out.length} bytes asked for`);
    return out;
  }
}

function isNotFound(err: unknown): boolean {
  return (
    err instanceof NotFound ||
    (err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 404 || err.name === 'NoSuchKey'))
  );
}

function isNoSuchUpload(err: unknown): boolean {
  return err instanceof S3ServiceException && (err.name === 'NoSuchUpload' || err.$metadata.httpStatusCode === 404);
}

function mapS3Error(err: unknown, what: string): KilnError {
  if (isNotFound(err)) return new KilnError(ErrorCode.NOT_FOUND, `Object not found: ${what}`);
  const message = err instanceof Error ? err.message : String(err);
  return new KilnError(ErrorCode.SERVICE_UNAVAILABLE, `Object storage failed on ${what}: ${message}`);
}
