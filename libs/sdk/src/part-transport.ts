import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';

export interface PartPutRequest {
  url: string;
  /** Exactly the headers the API returned with the URL (content-length and the checksum are signed). */
  headers: Record<string, string>;
  body: Readable;
  signal: AbortSignal;
}

export interface PartPutResponse {
  status: number;
  /** The response body (S3's XML error on failure). */
  text: string;
}

/** How part bytes travel to S3. Replaceable (tests wrap it; a proxy may need another). */
export type PartTransport = (req: PartPutRequest) => Promise<PartPutResponse>;

/**
 * PUT through node:http(s) with real backpressure: the body is read from the file only as fast as the socket
 * drains. (Node 20's fetch reads a streamed request body ahead into memory when the server is slower than
 * the disk, which made a 5 GB upload cost hundreds of MB.) Network failures reject with the socket's error.
 */
export const httpPutPart: PartTransport = ({ url, headers, body, signal }) =>
  new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = (target.protocol === 'https:' ? https : http).request(target, { method: 'PUT', headers, signal });
    request.on('error', (err) => {
      body.destroy();
      reject(err);
    });
    request.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    body.on('error', (err) => request.destroy(err));
    body.pipe(request);
  });
