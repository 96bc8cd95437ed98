import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { INestApplication } from '@nestjs/common';
import { context, type Span } from '@opentelemetry/api';
import { ApiMetrics } from '../metrics/api-metrics.js';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { presentedKey } from '../auth/api-key.guard.js';
import { ApiKeysService } from '../auth/api-keys.service.js';
import { type AuthContext, scopeAllows } from '../auth/auth-context.js';
import { ALL_MODELS } from '@kiln/database';
import { activeTracing, endHttpServerSpan, startHttpServerSpan } from '@kiln/tracing';
import { httpStatusFor, retryAfterHeader } from '../common/http-status-for-code.js';
import { type RateLimitDecision, rateLimited, RateLimitService } from '../fair-use/rate-limit.service.js';
import { ResolveRequestDto } from './resolver.dto.js';
import { notEnrolled, ResolverService } from './resolver.service.js';
import { type CachedResolution, ResolutionCache } from './resolution-cache.js';
import { parseJsonRequest } from '../common/validation.js';

const MAX_BODY_BYTES = 64 * 1024;
const RESOLVE_ROUTE = '/v1/resolve';

/**
 * `POST /v1/resolve` is what every device of every fleet calls, so it is served by this lean handler in front
 * of the framework (measured in bench/resolver-throughput.ts: the Nest + Express pipeline — body parser,
 * guard, validation pipe, interceptors, JSON serialisation — costs far more than the answer itself).
 *
 * Same semantics as the documented route in ResolverController: the same key check (ApiKeysService, device
 * tokens allowed, a revoked key refused from the next request on), the same per-key rate limit
 * (RateLimitService, 429 + Retry-After), the same model scope of device tokens (403 MODEL_NOT_ENROLLED), the body
 * parsed and validated by the same function as the global pipe's (parseJsonRequest: the same error bodies, byte for
 * byte), the same ResolverService with the same cache (ResolutionCache), and the same `{ error: { code, message } }`
 * bodies. The cache also finds an answer by the exact request body it answered: identical devices send identical
 * bodies, and then a request costs one hash lookup (plus the key's scope and rate-limit checks, both in memory).
 * Every other request goes to Express untouched (so does `/v1/resolve/`, which reaches ResolverController).
 */
export class ResolveFastPath {
  constructor(
    private readonly apiKeys: ApiKeysService,
    private readonly resolver: ResolverService,
    private readonly cache: ResolutionCache,
    private readonly rateLimits: RateLimitService,
    readonly metrics: ApiMetrics,
  ) {}

  static install(app: INestApplication): void {
    const server = app.getHttpServer() as Server;
    const fastPath = new ResolveFastPath(
      app.get(ApiKeysService),
      app.get(ResolverService),
      app.get(ResolutionCache),
      app.get(RateLimitService),
      app.get(ApiMetrics),
    );
    const framework = server.listeners('request') as RequestListener[];
    // Decided once: with tracing off, the hot path does not even look for a tracer.
    const traced = activeTracing() !== null;
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.method === 'POST' && (req.url === '/v1/resolve' || req.url?.startsWith('/v1/resolve?'))) {
        const start = process.hrtime.bigint();
        res.once('finish', () =>
          fastPath.metrics.observeRequest(
            'POST',
            '/v1/resolve',
            res.statusCode,
            Number(process.hrtime.bigint() - start) / 1e9,
          ),
        );
        if (traced) fastPath.handleTraced(req, res);
        else fastPath.handle(req, res);
        return;
      }
      for (const listener of framework) listener.call(server, req, res);
    });
  }

  /**
   * handle() inside the request's server span (Express's tracing middleware never sees this route), which records
   * whether the answer came from the cache.
   */
  handleTraced(req: IncomingMessage, res: ServerResponse): void {
    const { span, context: requestContext } = startHttpServerSpan('POST', RESOLVE_ROUTE, req.headers);
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      endHttpServerSpan(span, 'POST', RESOLVE_ROUTE, res.statusCode);
    };
    res.once('finish', end);
    res.once('close', end);
    context.with(requestContext, () => this.handle(req, res, span));
  }

  /**
   * A cache hit stays synchronous from the last body chunk to the response: no promises, so none of the
   * async-hook bookkeeping the process pays for each one (measured: a third of the hot path's CPU).
   */
  handle(req: IncomingMessage, res: ServerResponse, span?: Span): void {
    const key = presentedKey(req);
    readBody(req, (error, body) => {
      if (error) return sendError(res, error);
      if (!key) {
        return sendError(
          res,
          new KilnError(ErrorCode.UNAUTHENTICATED, 'Missing API key (Authorization: Bearer <key>).'),
        );
      }
      const auth = this.apiKeys.cachedAuthentication(key);
      const hit = auth ? this.cache.answeredBody(auth.tenantId, body) : undefined;
      if (auth && hit && scopeAllows(auth.modelScope, hit.modelName)) {
        const decision = this.rateLimits.take(auth.keyId, auth.rateLimitPerMinute);
        this.metrics.resolveCache.inc({ result: 'hit' });
        span?.setAttribute('kiln.resolve.cache', 'hit');
        const answer = (d: RateLimitDecision): void => {
          if (!d.allowed) return sendError(res, rateLimited(d.retryAfterSeconds));
          this.metrics.resolveDecisions.inc({ outcome: hit.outcome });
          span?.setAttribute('kiln.resolve.outcome', hit.outcome);
          send(res, 200, hit.json);
        };
        // Synchronous while this replica holds a lease of the key's budget; a promise when it takes a new one.
        if (decision instanceof Promise) decision.then(answer, (err: unknown) => sendError(res, err));
        else answer(decision);
        return;
      }
      this.metrics.resolveCache.inc({ result: 'miss' });
      span?.setAttribute('kiln.resolve.cache', 'miss');
      this.resolve(key, body).then(
        (answer) => {
          this.metrics.resolveDecisions.inc({ outcome: answer.outcome });
          span?.setAttribute('kiln.resolve.outcome', answer.outcome);
          send(res, 200, answer.json);
        },
        (err: unknown) => sendError(res, err),
      );
    });
  }

  private async resolve(key: string, body: string): Promise<CachedResolution> {
    const auth = await this.apiKeys.authenticate(key);
    if (!auth) throw new KilnError(ErrorCode.UNAUTHENTICATED, 'Invalid or revoked API key.');
    await this.rateLimits.check(auth.keyId, auth.rateLimitPerMinute);
    // Resolved for the tenant, then checked against each caller's scope: callers sharing an answer may hold tokens
    // enrolled for different models.
    const answer = await this.cache.answerBody(auth.tenantId, body, async () =>
      this.resolver.resolution(auth.tenantId, await parseJsonRequest(ResolveRequestDto, body), [ALL_MODELS]),
    );
    assertInScope(auth, answer.modelName);
    return answer;
  }
}

function assertInScope(auth: AuthContext, modelName: string): void {
  if (!scopeAllows(auth.modelScope, modelName)) throw notEnrolled(modelName);
}

function sendError(res: ServerResponse, err: unknown): void {
  const error =
    err instanceof KilnError ? err : new KilnError(ErrorCode.INTERNAL, 'Internal error; it has been logged.');
  if (!(err instanceof KilnError)) console.error(err);
  send(
    res,
    httpStatusFor(error.code),
    Buffer.from(JSON.stringify({ error: { code: error.code, message: error.message, details: error.details } })),
    retryAfterHeader(error.details),
  );
}

function send(res: ServerResponse, status: number, body: Buffer, retryAfter: string | null = null): void {
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': body.length,
    ...(retryAfter ? { 'Retry-After': retryAfter } : {}),
  });
  res.end(body);
}

function readBody(req: IncomingMessage, done: (error: KilnError | null, body: string) => void): void {
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('application/json')) {
    req.resume();
    done(new KilnError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, 'Send the request as application/json.'), '');
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let failed = false;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES && !failed) {
      failed = true;
      done(new KilnError(ErrorCode.PAYLOAD_TOO_LARGE, `A resolve request is at most ${MAX_BODY_BYTES} bytes.`), '');
      req.resume();
      return;
    }
    if (!failed) chunks.push(chunk);
  });
  req.on('end', () => {
    if (!failed) done(null, chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8'));
  });
}
