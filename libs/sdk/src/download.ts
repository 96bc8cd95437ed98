import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { assemblePackage } from './assemble.js';
import { KilnNetworkError, KilnSdkError, KilnStorageError } from './errors.js';
import type { KilnClient } from './kiln-client.js';
import { abortError, withRetry } from './retry.js';
import type { ArtifactPartDownload } from './types.js';

export interface DownloadOptions {
  /** Also build `<target>.pt2`, the package aoti_load_package loads (default true). */
  assemble?: boolean;
  signal?: AbortSignal;
  onProgress?: (event: { type: 'download'; artifactId: string; downloadedBytes: number; totalBytes: number }) => void;
}

export interface DownloadedPart {
  role: 'code' | 'weights';
  sha256: string;
  size: number;
  entry?: string;
  path: string;
}

export interface DownloadResult {
  artifactId: string;
  targetId: string;
  dir: string;
  manifestPath: string;
  parts: DownloadedPart[];
  /** The assembled AOTInductor package, or null with `assemble: false`. */
  packagePath: string | null;
}

/**
 * Downloads an artifact through its short-lived presigned URLs: each part streams to disk through sha256,
 * and a part whose hash or size differs from the manifest's is deleted and reported. Parts already on disk
 * with the right hash are kept (downloads resume part by part). Transient failures are retried.
 */
export async function downloadArtifact(
  client: KilnClient,
  artifactId: string,
  destDir: string,
  opts: DownloadOptions = {},
): Promise<DownloadResult> {
  const signal = opts.signal;
  const info = await client.getArtifactDownload(artifactId, { signal });
  const dir = path.resolve(destDir);
  await mkdir(dir, { recursive: true });
  const totalBytes = info.parts.reduce((s, p) => s + p.size, 0);
  let downloadedBytes = 0;
  const report = (n: number): void => {
    downloadedBytes += n;
    opts.onProgress?.({ type: 'download', artifactId, downloadedBytes, totalBytes });
  };

  const manifestPath = path.join(dir, `${info.targetId}-manifest.json`);
  await fetchToFile(client, info.manifestUrl, manifestPath, null, signal, () => undefined);

  const parts: DownloadedPart[] = [];
  for (const part of info.parts) {
    const file = path.join(dir, partFileName(info.targetId, part));
    if (await hasContent(file, part.size, part.sha256)) {
      report(part.size);
    } else {
      await fetchToFile(client, part.url, file, { size: part.size, sha256: part.sha256 }, signal, report);
    }
    parts.push({
      role: part.role,
      sha256: part.sha256,
      size: part.size,
      ...(part.entry ? { entry: part.entry } : {}),
      path: file,
    });
  }

  let packagePath: string | null = null;
  if (opts.assemble !== false) {
    const code = parts.find((p) => p.role === 'code');
    if (!code) throw new KilnSdkError(`Artifact ${artifactId} has no code part.`);
    packagePath = path.join(dir, `${info.targetId}.pt2`);
    await assemblePackage(
      code.path,
      parts.filter((p) => p.role === 'weights').map((p) => ({ entry: p.entry!, path: p.path, size: p.size })),
      packagePath,
    );
  }
  return { artifactId, targetId: info.targetId, dir, manifestPath, parts, packagePath };
}

export function partFileName(targetId: string, part: Pick<ArtifactPartDownload, 'role' | 'sha256'>): string {
  return `${targetId}-${part.role}-${part.sha256.slice(0, 12)}${part.role === 'code' ? '.zip' : '.blob'}`;
}

async function hasContent(file: string, size: number, sha256: string): Promise<boolean> {
  try {
    if ((await stat(file)).size !== size) return false;
  } catch {
    return false;
  }
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex') === sha256;
}

async function fetchToFile(
  client: KilnClient,
  url: string,
  file: string,
  expect: { size: number; sha256: string } | null,
  signal: AbortSignal | undefined,
  report: (n: number) => void,
): Promise<void> {
  const tmp = `${file}.partial`;
  await withRetry(
    async () => {
      let res: Response;
      try {
        res = await client.fetch(url, { signal });
      } catch (err) {
        if (signal?.aborted) throw abortError(signal);
        throw new KilnNetworkError(`GET ${path.basename(file)}: ${(err as Error).message}`, { cause: err });
      }
      if (!res.ok || !res.body) {
        const text = await res.text().catch(() => '');
        const code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? `HTTP_${res.status}`;
        throw new KilnStorageError(res.status, code, `GET ${path.basename(file)}: ${res.status} ${code}`);
      }
      const hash = createHash('sha256');
      let size = 0;
      const meter = new Transform({
        transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
          hash.update(chunk);
          size += chunk.length;
          report(chunk.length);
          done(null, chunk);
        },
      });
      try {
        await pipeline(Readable.fromWeb(res.body), meter, createWriteStream(tmp), {
          signal,
        });
      } catch (err) {
        report(-size);
        await rm(tmp, { force: true });
        if (signal?.aborted) throw abortError(signal);
        throw new KilnNetworkError(`GET ${path.basename(file)}: ${(err as Error).message}`, { cause: err });
      }
      const sha = hash.digest('hex');
      if (expect && (size !== expect.size || sha !== expect.sha256)) {
        report(-size);
        await rm(tmp, { force: true });
        throw new KilnSdkError(
          `${path.basename(file)}: got ${size} bytes with sha256 ${sha}; the manifest says ${expect.size} bytes, ${expect.sha256}`,
        );
      }
      await rename(tmp, file);
    },
    {
      policy: client.retryPolicy,
      signal,
      onRetry: (err, attempt, delay) => client.reportRetry(`GET ${path.basename(file)}`, err, attempt, delay),
    },
  );
}
