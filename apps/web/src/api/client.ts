/** An error the API answered with (`{ error: { code, message, details? } }`), or a network failure. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Whatever a call threw, as an ApiError (a bug in the page or the browser's own error becomes code CLIENT). */
export function toApiError(err: unknown): ApiError {
  return err instanceof ApiError ? err : new ApiError(0, 'CLIENT', String(err));
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/**
 * The dashboard's view of the Kiln API: same origin, the tenant's API key as a Bearer token. A 401 on any
 * call signs the tab out (the key was revoked or is wrong).
 */
export class ApiClient {
  constructor(
    readonly apiKey: string,
    private readonly onUnauthenticated: () => void = () => undefined,
    readonly baseUrl = '',
  ) {}

  get<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>('GET', path, opts);
  }

  post<T>(path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>('POST', path, { ...opts, body });
  }

  put<T>(path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>('PUT', path, { ...opts, body });
  }

  delete<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>('DELETE', path, opts);
  }

  authHeaders(): Record<string, string> {
    return { Authorization: `Bearer ${this.apiKey}` };
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json', ...this.authHeaders(), ...opts.headers };
    let body: BodyInit | undefined;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, { method, headers, body, signal: opts.signal });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw new ApiError(0, 'NETWORK', 'Could not reach the Kiln API. Check your connection and try again.');
    }
    return parseResponse<T>(res, this.onUnauthenticated);
  }
}

export async function parseResponse<T>(res: Response, onUnauthenticated?: () => void): Promise<T> {
  const text = await res.text();
  let json: unknown = undefined;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  if (!res.ok) {
    const err = errorFromBody(res.status, json);
    if (res.status === 401) onUnauthenticated?.();
    throw err;
  }
  return json as T;
}

export function errorFromBody(status: number, json: unknown): ApiError {
  const e = (json as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  if (e && typeof e.code === 'string') {
    return new ApiError(
      status,
      e.code,
      typeof e.message === 'string' ? e.message : e.code,
      e.details as Record<string, unknown> | undefined,
    );
  }
  return new ApiError(status, status >= 500 ? 'INTERNAL' : 'HTTP_' + status, `The API answered HTTP ${status}.`);
}
