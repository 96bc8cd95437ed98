import { Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import type { Request, Response } from 'express';
import { DataSource, IsNull, Repository } from 'typeorm';
import { type CompilationStatus, ErrorCode, KilnError } from '@kiln/contracts';
import { ApiKeyEntity } from '@kiln/database';
import type { AuthContext } from '../auth/auth-context.js';
import { ApiKeysService } from '../auth/api-keys.service.js';
import { CompilationsService } from './compilations.service.js';
import type { CompilationEventsTokenResponseDto, CompilationResponseDto } from './compilations.dto.js';
import { EVENTS_TOKEN_TTL_S, eventsTokenProblem, parseEventsToken, signEventsToken } from './events-token.js';

const TERMINAL: readonly CompilationStatus[] = ['succeeded', 'partial', 'failed', 'cancelled'];
/** One cheap query per open stream per second; the full compilation is loaded only when it changed. */
const POLL_INTERVAL_MS = 1000;
/** A comment line now and then keeps proxies and load balancers from closing an idle stream. */
const KEEPALIVE_MS = 15_000;
/** Streams end after this long; EventSource reconnects by itself (with a fresh token, the dashboard). */
const MAX_STREAM_MS = 15 * 60_000;
/** Open streams per API process; past this the endpoint answers 503 and clients poll instead. */
const MAX_OPEN_STREAMS = 500;

/**
 * Server-sent events of one compilation: the compilation JSON (exactly what GET /v1/compilations/:id
 * answers) each time a build's status, phase, attempt, error or artifact changes, then `end` once the
 * compilation is over (`problem` if it disappears meanwhile). Polls PostgreSQL once a second per open
 * stream with one small query. docs/dashboard.md describes the protocol and its authentication.
 */
@Injectable()
export class CompilationEventsService implements OnModuleDestroy {
  private readonly logger = new Logger(CompilationEventsService.name);
  private readonly open = new Set<() => void>();

  constructor(
    private readonly compilations: CompilationsService,
    private readonly apiKeys: ApiKeysService,
    @InjectRepository(ApiKeyEntity) private readonly keys: Repository<ApiKeyEntity>,
    @InjectDataSource() private readonly db: DataSource,
  ) {}

  /** A token that opens this compilation's event stream for EVENTS_TOKEN_TTL_S seconds. */
  async issueToken(auth: AuthContext, compilationId: string): Promise<CompilationEventsTokenResponseDto> {
    await this.compilations.get(auth.tenantId, compilationId); // 404 for another tenant's compilation
    const key = await this.keys.findOne({ where: { id: auth.keyId, revokedAt: IsNull() } });
    if (!key) throw new KilnError(ErrorCode.UNAUTHENTICATED, 'Invalid or revoked API key.');
    const expiresAt = Math.floor(Date.now() / 1000) + EVENTS_TOKEN_TTL_S;
    const token = signEventsToken(key.keyHash, key.id, compilationId, expiresAt);
    return {
      token,
      expiresAt: new Date(expiresAt * 1000).toISOString(),
      url: `/v1/compilations/${compilationId}/events?token=${encodeURIComponent(token)}`,
    };
  }

  /** The tenant allowed to watch this compilation: an API key in the headers, or an events token. */
  async authenticate(req: Request, compilationId: string): Promise<string> {
    const presented = presentedKey(req);
    if (presented) {
      const auth = await this.apiKeys.authenticate(presented);
      if (!auth) throw new KilnError(ErrorCode.UNAUTHENTICATED, 'Invalid or revoked API key.');
      if (auth.kind !== 'api') {
        throw new KilnError(ErrorCode.FORBIDDEN, 'Device tokens can only resolve and download artifacts.');
      }
      return auth.tenantId;
    }
    const raw = typeof req.query.token === 'string' ? req.query.token : null;
    if (!raw) {
      throw new KilnError(
        ErrorCode.UNAUTHENTICATED,
        'Missing credentials: send an API key (Authorization: Bearer <key>) or ?token= from ' +
          'POST /v1/compilations/:id/events-token.',
      );
    }
    const token = parseEventsToken(raw);
    if (!token) throw new KilnError(ErrorCode.UNAUTHENTICATED, 'Invalid events token.');
    const key = await this.keys.findOne({ where: { id: token.keyId, revokedAt: IsNull() } });
    if (!key || key.kind !== 'api') throw new KilnError(ErrorCode.UNAUTHENTICATED, 'Invalid events token.');
    const problem = eventsTokenProblem(token, key.keyHash, compilationId, Math.floor(Date.now() / 1000));
    if (problem) throw new KilnError(ErrorCode.UNAUTHENTICATED, problem);
    return key.tenantId;
  }

  /** Streams until the compilation ends, the client goes away, or MAX_STREAM_MS passes. */
  async stream(tenantId: string, compilationId: string, req: Request, res: Response): Promise<void> {
    const first = await this.compilations.get(tenantId, compilationId); // 404 before any header is sent
    if (this.open.size >= MAX_OPEN_STREAMS) {
      res.setHeader('Retry-After', '30');
      throw new KilnError(ErrorCode.SERVICE_UNAVAILABLE, 'Too many open event streams; poll the compilation instead.');
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no', // nginx: do not buffer the stream
    });
    res.flushHeaders();

    let closed = false;
    let eventId = 0;
    let timer: NodeJS.Timeout | undefined;
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
    const close = (): void => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      clearInterval(keepalive);
      this.open.delete(close);
      res.end();
    };
    this.open.add(close);
    req.on('close', close);
    const deadline = Date.now() + MAX_STREAM_MS;

    const send = (event: string, data: unknown): void => {
      res.write(`id: ${++eventId}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const finishIfTerminal = (c: CompilationResponseDto): boolean => {
      if (!TERMINAL.includes(c.status)) return false;
      send('end', { id: c.id, status: c.status });
      close();
      return true;
    };

    res.write('retry: 2000\n\n');
    send('compilation', first);
    if (finishIfTerminal(first)) return;
    let signature = await this.signature(tenantId, compilationId);

    const tick = async (): Promise<void> => {
      if (closed) return;
      try {
        const now = await this.signature(tenantId, compilationId);
        if (closed) return;
        if (now === null) {
          send('problem', { code: ErrorCode.NOT_FOUND, message: 'No such compilation.' });
          close();
          return;
        }
        if (now !== signature) {
          signature = now;
          const current = await this.compilations.get(tenantId, compilationId);
          if (closed) return;
          send('compilation', current);
          if (finishIfTerminal(current)) return;
        }
      } catch (err) {
        // A database hiccup: keep the stream, try again on the next tick.
        this.logger.warn(`Event stream of ${compilationId}: ${String(err)}`);
      }
      if (Date.now() >= deadline) close();
      else timer = setTimeout(() => void tick(), POLL_INTERVAL_MS);
    };
    timer = setTimeout(() => void tick(), POLL_INTERVAL_MS);
  }

  /** What the stream reports on, as one string: it changes exactly when an event is due. */
  private async signature(tenantId: string, compilationId: string): Promise<string | null> {
    const rows = await this.db.query<unknown[]>(
      `SELECT c.status, c.finished_at,
              (SELECT json_agg(json_build_array(b.target_id, b.status, b.phase, b.attempt, b.error_code,
                                                b.artifact_id, b.started_at, b.finished_at) ORDER BY b.target_id)
                 FROM builds b WHERE b.compilation_id = c.id) AS builds
         FROM compilations c
        WHERE c.id = $1 AND c.tenant_id = $2`,
      [compilationId, tenantId],
    );
    return rows.length === 0 ? null : JSON.stringify(rows[0]);
  }

  onModuleDestroy(): void {
    for (const close of [...this.open]) close();
  }
}

function presentedKey(req: Request): string | null {
  const header = req.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice('Bearer '.length).trim();
  const apiKey = req.headers['x-api-key'];
  return typeof apiKey === 'string' ? apiKey.trim() : null;
}
