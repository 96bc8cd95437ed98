import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { INestApplication } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { LRUCache } from 'lru-cache';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { presentedKey } from '../auth/api-key.guard.js';
import { ApiKeysService } from '../auth/api-keys.service.js';
import { httpStatusFor } from '../common/http-status-for-code.js';
import { ResolveRequestDto } from './resolver.dto.js';
import { RESOLUTION_CACHE_TTL_MS, ResolverService } from './resolver.service.js';
import { dropNullFields, refuseNulCharacters, validationFailure, VALIDATOR_OPTIONS } from '../common/validation.js';

const MAX_BODY_BYTES = 64 * 1024;

/**
 * `POST /v1/resolve` is what every device of every fleet calls, so it is served by this lean handler in front
 * of the framework (measured in bench/resolver-throughput.ts: the Nest + Express pipeline — body parser,
 * guard, validation pipe, interceptors, JSON serialisation — costs far more than the answer itself).
 *
 * Same semantics as the documented route in ResolverController: the same key check (ApiKeysService, device
 * tokens allowed), the same DTO validated with the same class-validator rules, the same ResolverService and
 * the same `{ error: { code, message } }` bodies. On top, the serialised answer is cached per (tenant, exact
 * request body) for RESOLUTION_CACHE_TTL_MS: identical devices send identical bodies, and then a request
 * costs one hash lookup. Every other request goes to Express untouched.
 */
export class ResolveFastPath {
  private readonly answers = new LRUCache<string, Buffer>({ max: 50_000, ttl: RESOLUTION_CACHE_TTL_MS });
  /** Misses in flight: requests that miss the same answer at once wait for one resolution, not one each. */
  private readonly pending = new Map<string, Promise<Buffer>>();

  constructor(
    private readonly apiKeys: ApiKeysService,
    private readonly resolver: ResolverService,
  ) {}

  static install(app: INestApplication): void {
    const server = app.getHttpServer() as Server;
    const fastPath = new ResolveFastPath(app.get(ApiKeysService), app.get(ResolverService));
    const framework = server.listeners('request') as RequestListener[];
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.method === 'POST' && (req.url === '/v1/resolve' || req.url?.startsWith('/v1/resolve?'))) {
        void fastPath.handle(req, res);
        return;
      }
      for (const listener of framework) listener.call(server, req, res);
    });
  }

  /**
   * A cache hit stays synchronous from the last body chunk to the response: no promises, so none of the
   * async-hook bookkeeping the process pays for each one (measured: a third of the hot path's CPU).
   */
  handle(req: IncomingMessage, res: ServerResponse): void {
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
      const hit = auth ? this.answers.get(`${auth.tenantId}\0${body}`) : undefined;
      if (hit) return send(res, 200, hit);
      this.resolve(key, body).then(
        (answer) => send(res, 200, answer),
        (err: unknown) => sendError(res, err),
      );
    });
  }

  private async resolve(key: string, body: string): Promise<Buffer> {
    const auth = await this.apiKeys.authenticate(key);
    if (!auth) throw new KilnError(ErrorCode.UNAUTHENTICATED, 'Invalid or revoked API key.');
    const cacheKey = `${auth.tenantId}\0${body}`;
    const answer = this.answers.get(cacheKey);
    if (answer) return answer;
    let pending = this.pending.get(cacheKey);
    if (!pending) {
      pending = (async () => {
        const fresh = Buffer.from(JSON.stringify(await this.resolver.resolve(auth.tenantId, await parseRequest(body))));
        this.answers.set(cacheKey, fresh);
        return fresh;
      })();
      this.pending.set(cacheKey, pending);
      void pending.then(
        () => this.pending.delete(cacheKey),
        () => this.pending.delete(cacheKey),
      );
    }
    return pending;
  }
}

function sendError(res: ServerResponse, err: unknown): void {
  const error =
    err instanceof KilnError ? err : new KilnError(ErrorCode.INTERNAL, 'Internal error; it has been logged.');
  if (!(err instanceof KilnError)) console.error(err);
  send(
    res,
    httpStatusFor(error.code),
    Buffer.from(JSON.stringify({ error: { code: error.code, message: error.message, details: error.details } })),
  );
}

function send(res: ServerResponse, status: number, body: Buffer): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length });
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

/** The same validation the ValidationPipe applies to ResolveRequestDto (same options, same errors, nulls dropped). */
async function parseRequest(body: string): Promise<ResolveRequestDto> {
  let plain: unknown;
  try {
    plain = JSON.parse(body);
  } catch {
    throw new KilnError(ErrorCode.VALIDATION_FAILED, 'The request body is not valid JSON.');
  }
  if (typeof plain !== 'object' || plain === null || Array.isArray(plain)) {
    throw new KilnError(ErrorCode.VALIDATION_FAILED, 'The request body must be a JSON object.');
  }
  refuseNulCharacters(plain);
  const dto = plainToInstance(ResolveRequestDto, plain);
  const errors = await validate(dto, VALIDATOR_OPTIONS);
  if (errors.length > 0) throw validationFailure(errors);
  return dropNullFields(dto) as ResolveRequestDto;
}
