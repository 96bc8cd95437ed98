import { Global, Injectable, Module } from '@nestjs/common';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The API's Prometheus registry: one per process, names prefixed `kiln_`. Labels are bounded sets only (route
 * templates, methods, status codes, outcomes), never ids, so series counts stay fixed whatever the traffic.
 */
@Injectable()
export class ApiMetrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'kiln_http_requests_total',
    help: 'HTTP requests answered, by method, route template and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'kiln_http_request_duration_seconds',
    help: 'Time from request to response, by method, route template and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly resolveDecisions = new Counter({
    name: 'kiln_resolve_decisions_total',
    help: 'POST /v1/resolve answers (200), by outcome: artifact (a compiled artifact chosen) or portable (fallback only).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly resolveCache = new Counter({
    name: 'kiln_resolve_cache_requests_total',
    help: "Lookups of the resolve fast path's answer cache, by result: hit or miss.",
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'kiln_api_' });
  }

  /** Records one answered request; `route` is the matched template (`/v1/models/:id`), never the raw path. */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status: String(status) };
    this.httpRequests.inc(labels);
    this.httpDuration.observe(labels, seconds);
  }
}

/**
 * The route label of a request: Express's matched route template joined to its router's mount path, or
 * `unmatched` when no route matched (404s for arbitrary paths must not mint a series per path).
 */
export function routeLabel(req: { baseUrl?: string; route?: { path?: unknown } }): string {
  const template = req.route?.path;
  if (typeof template !== 'string') return 'unmatched';
  return `${req.baseUrl ?? ''}${template}` || '/';
}

/** Global so any module's services can count without importing it. */
@Global()
@Module({ providers: [ApiMetrics], exports: [ApiMetrics] })
export class MetricsModule {}
