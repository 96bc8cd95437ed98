/**
 * XMLHttpRequest as a promise, because fetch() still cannot report upload progress. Resolves with any
 * HTTP status; rejects with NetworkError (no answer at all: offline, refused, or a CORS refusal, which the
 * browser does not tell apart) or with an AbortError.
 */
export class NetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkError';
  }
}

export interface XhrResult {
  status: number;
  text: string;
  header: (name: string) => string | null;
}

export interface XhrOptions {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: XMLHttpRequestBodyInit | null;
  /** Bytes of the body sent so far. */
  onUploadProgress?: (loaded: number) => void;
  /** The whole body is sent; the server is now working on its answer. */
  onUploaded?: () => void;
  signal?: AbortSignal;
}

/** Headers the browser sets itself and refuses from scripts. */
const FORBIDDEN = new Set(['content-length', 'host', 'connection', 'accept-encoding']);

export function xhr(opts: XhrOptions): Promise<XhrResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new DOMException('The upload was cancelled.', 'AbortError'));
      return;
    }
    const req = new XMLHttpRequest();
    req.open(opts.method, opts.url);
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (!FORBIDDEN.has(k.toLowerCase())) req.setRequestHeader(k, v);
    }
    if (opts.onUploadProgress) {
      const report = opts.onUploadProgress;
      req.upload.onprogress = (e) => report(e.loaded);
    }
    if (opts.onUploaded) req.upload.onload = opts.onUploaded;
    const onAbort = (): void => req.abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const done = (): void => opts.signal?.removeEventListener('abort', onAbort);
    req.onload = () => {
      done();
      resolve({ status: req.status, text: req.responseText, header: (n) => req.getResponseHeader(n) });
    };
    req.onerror = () => {
      done();
      reject(new NetworkError(`No answer from ${new URL(opts.url, location.href).origin}.`));
    };
    req.onabort = () => {
      done();
      reject(new DOMException('The upload was cancelled.', 'AbortError'));
    };
    req.send(opts.body ?? null);
  });
}
