import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type DynamicModule } from '@nestjs/common';
import { trace } from '@opentelemetry/api';
import { LoggerModule, type Params } from 'nestjs-pino';
import pino from 'pino';
import pretty from 'pino-pretty';
import { KilnConfig } from '@kiln/config';

/** Ids that say what a log line is about, beyond an HTTP request: set around work by withLogContext. */
export interface LogContext {
  tenantId?: string;
  compilationId?: string;
  buildId?: string;
  targetId?: string;
  workflowId?: string;
  activity?: string;
  attempt?: number;
}

const logContext = new AsyncLocalStorage<LogContext>();

/** Runs `fn` with these ids on every log line it writes (merged over the ids of an enclosing context). */
export function withLogContext<T>(fields: LogContext, fn: () => T): T {
  return logContext.run({ ...logContext.getStore(), ...fields }, fn);
}

/** The ids of every line: the enclosing log context's, and the active trace's when tracing is on. */
function logFields(): Record<string, unknown> {
  const span = trace.getActiveSpan()?.spanContext();
  const traced = span && trace.isSpanContextValid(span) ? { traceId: span.traceId, spanId: span.spanId } : {};
  return { ...logContext.getStore(), ...traced };
}

/** The message of an answered request's line: `GET /v1/models 200` (no query string: it may hold a token). */
function requestLine(req: IncomingMessage, res: ServerResponse): string {
  return `${req.method} ${req.url?.split('?')[0]} ${res.statusCode}`;
}

/** A caller's X-Request-Id is kept when it is a plain token; anything else gets a fresh id. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Structured logs for a Kiln process (pino through Nest, so `new Logger(X).log()` everywhere writes through it): JSON
 * lines with the service, the request id (and tenant) of an HTTP request, the compilation, build and activity of
 * worker work (withLogContext) and the trace and span ids when tracing is on. KILN_LOG_FORMAT=pretty prints the same
 * fields human-readably (the local default); json is for log collectors. Written synchronously, so the last lines
 * before a crash or an exit are not lost in a buffer.
 */
export function kilnLoggerModule(service: 'kiln-api' | 'kiln-worker'): DynamicModule {
  return LoggerModule.forRootAsync({
    inject: [KilnConfig],
    useFactory: (config: KilnConfig): Params => {
      const stream =
        config.logFormat === 'pretty'
          ? pretty({
              sync: true,
              colorize: process.stdout.isTTY,
              translateTime: 'SYS:HH:MM:ss.l',
              ignore: 'pid,hostname,service,context,req,res,responseTime',
              messageFormat: '{if context}[{context}] {end}{msg}',
              // The ids that are left (request, tenant, compilation, build, trace) follow the message on its line.
              singleLine: true,
            })
          : pino.destination({ sync: true });
      return {
        pinoHttp: [
          {
            level: config.KILN_LOG_LEVEL,
            base: { service },
            mixin: logFields,
            genReqId: (req: IncomingMessage, res: ServerResponse) => {
              const given = req.headers['x-request-id'];
              const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
              res.setHeader('X-Request-Id', id);
              return id;
            },
            // Evaluated at the request's start and again at its end: by then the key's tenant is known.
            customProps: (req: IncomingMessage) => {
              const tenantId = (req as { auth?: { tenantId?: string } }).auth?.tenantId;
              return tenantId ? { tenantId } : {};
            },
            // Never a key, a presigned URL's signature or a body in a log line: method, route path and ids only.
            serializers: {
              req: (req: { id?: string; method?: string; url?: string }) => ({
                id: req.id,
                method: req.method,
                path: req.url?.split('?')[0],
              }),
              res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
            },
            // Health probes every few seconds would drown the rest.
            autoLogging: { ignore: (req: IncomingMessage) => req.url === '/v1/health' },
            customSuccessMessage: requestLine,
            customErrorMessage: requestLine,
          },
          stream,
        ],
      };
    },
  });
}
