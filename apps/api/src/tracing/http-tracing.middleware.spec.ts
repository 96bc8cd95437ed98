import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, beforeEach, describe, it } from 'node:test';
import { type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { NextFunction, Request, Response } from 'express';
import { httpTracingMiddleware } from './http-tracing.middleware.js';

// The global provider, as startTracing registers it (async-local context), exporting into memory.
const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();
after(() => provider.shutdown());

/** Runs the middleware for one request; `routed` is what Express matched (set once routing ran, as in Express). */
function serve(
  req: { method: string; path: string; headers?: Record<string, string> },
  status: number,
  routed?: { baseUrl: string; route: { path: string } },
): { activeInNext: Span | undefined } {
  const request = { headers: {}, ...req } as unknown as Request;
  const res = Object.assign(new EventEmitter(), { statusCode: status }) as unknown as Response;
  let activeInNext: Span | undefined;
  httpTracingMiddleware()(request, res, (() => (activeInNext = trace.getActiveSpan())) as NextFunction);
  Object.assign(request, routed ?? {});
  res.emit('finish');
  res.emit('close'); // after finish, as Node emits both: the span ends once
  return { activeInNext };
}

describe('httpTracingMiddleware', () => {
  beforeEach(() => exporter.reset());

  it('runs the request inside its server span, named by the route template', () => {
    const { activeInNext } = serve({ method: 'GET', path: '/v1/models/0b9d6c1e' }, 200, {
      baseUrl: '',
      route: { path: '/v1/models/:id' },
    });
    const [span] = exporter.getFinishedSpans();
    assert.equal(exporter.getFinishedSpans().length, 1);
    assert.equal(activeInNext?.spanContext().spanId, span.spanContext().spanId);
    assert.equal(span.name, 'GET /v1/models/:id');
    assert.equal(span.kind, SpanKind.SERVER);
    assert.equal(span.attributes['http.route'], '/v1/models/:id');
    assert.equal(span.attributes['url.path'], '/v1/models/0b9d6c1e');
    assert.equal(span.attributes['http.response.status_code'], 200);
    assert.equal(span.status.code, SpanStatusCode.UNSET);
  });

  it("joins the caller's trace when the request carries a traceparent", () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    serve({ method: 'GET', path: '/v1/targets', headers: { traceparent: `00-${traceId}-${parent}-01` } }, 200, {
      baseUrl: '/v1',
      route: { path: '/targets' },
    });
    const [span] = exporter.getFinishedSpans();
    assert.equal(span.spanContext().traceId, traceId);
    assert.equal(span.parentSpanId, parent);
    assert.equal(span.name, 'GET /v1/targets');
  });

  it('marks a 5xx as an error, not a 4xx; a request no route matched keeps the bare method as its name', () => {
    serve({ method: 'POST', path: '/v1/things' }, 500, { baseUrl: '', route: { path: '/v1/things' } });
    serve({ method: 'GET', path: '/no/such/path/123' }, 404);
    const [failed, unmatched] = exporter.getFinishedSpans();
    assert.equal(failed.status.code, SpanStatusCode.ERROR);
    assert.equal(unmatched.status.code, SpanStatusCode.UNSET);
    assert.equal(unmatched.name, 'GET');
    assert.equal(unmatched.attributes['http.route'], undefined);
  });
});
