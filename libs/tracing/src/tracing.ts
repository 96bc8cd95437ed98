import type { IncomingHttpHeaders } from 'node:http';
import {
  context,
  type Context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVICE_NAME,
  ATTR_URL_PATH,
} from '@opentelemetry/semantic-conventions';
import type { KilnConfig } from '@kiln/config';

export type TracingSettings = Pick<
  KilnConfig,
  'OTEL_EXPORTER_OTLP_ENDPOINT' | 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' | 'OTEL_BSP_SCHEDULE_DELAY'
>;

/** What a process's tracing is made of; the Temporal worker hands the processor and resource to its workflow sink. */
export interface KilnTracing {
  readonly serviceName: string;
  readonly url: string;
  readonly resource: Resource;
  readonly spanProcessor: SpanProcessor;
}

/** The tracer of Kiln's own spans (HTTP requests, driver phases); Temporal's interceptors use their own names. */
export const KILN_TRACER_NAME = 'kiln';

let active: { tracing: KilnTracing; provider: NodeTracerProvider } | null = null;

/**
 * Where traces are posted: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else `<OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces`
 * (the OTLP/HTTP rule for the base endpoint); null when neither is set, which is tracing off.
 */
export function otlpTracesUrl(settings: TracingSettings): string | null {
  if (settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (settings.OTEL_EXPORTER_OTLP_ENDPOINT)
    return `${settings.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
  return null;
}

/**
 * Starts this process's tracing once (later calls return the first): a global tracer provider whose spans go in
 * batches to the OTLP/HTTP endpoint (JSON encoding), W3C trace context as the propagator, and an async-local context
 * so a span made active around a request is the parent of what the request does (a Temporal workflow start
 * included). Returns null, registering nothing, when no endpoint is configured: every span call is then the
 * OpenTelemetry API's no-op.
 *
 * Manual spans only, no auto-instrumentation: that would have to patch modules before Nest and Express load, which
 * ESM entry points cannot do without a loader hook; the few spans worth having are made where they happen.
 */
export function startTracing(settings: TracingSettings, serviceName: string): KilnTracing | null {
  if (active) return active.tracing;
  const url = otlpTracesUrl(settings);
  if (!url) return null;
  const resource = Resource.default().merge(new Resource({ [ATTR_SERVICE_NAME]: serviceName }));
  const spanProcessor = new BatchSpanProcessor(new OTLPTraceExporter({ url }), {
    scheduledDelayMillis: settings.OTEL_BSP_SCHEDULE_DELAY,
  });
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  provider.register({
    propagator: new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
    }),
  });
  const tracing: KilnTracing = { serviceName, url, resource, spanProcessor };
  active = { tracing, provider };
  return tracing;
}

/** This process's tracing, or null when it is off. */
export function activeTracing(): KilnTracing | null {
  return active?.tracing ?? null;
}

/** Sends the spans still waiting and stops exporting (at shutdown, after the last span ended). */
export async function stopTracing(): Promise<void> {
  const current = active;
  if (!current) return;
  active = null;
  await current.provider.shutdown();
}

export function kilnTracer(): Tracer {
  return trace.getTracer(KILN_TRACER_NAME);
}

/** The W3C `traceparent` of a context's span, for a process that cannot carry OpenTelemetry context itself. */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent;
}

/** The span context a `traceparent` names, as a parent context; ROOT_CONTEXT when it names none. */
export function contextOfTraceparent(traceparent: string | undefined): Context {
  return traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
}

/**
 * The server span of one HTTP request: a child of the caller's trace when the request carries a `traceparent`,
 * named by method until the route is known. Returns the span and the context to run the request's handling in.
 */
export function startHttpServerSpan(
  method: string,
  path: string,
  headers: IncomingHttpHeaders,
): { span: Span; context: Context } {
  const parent = propagation.extract(ROOT_CONTEXT, headers);
  const span = kilnTracer().startSpan(
    method,
    { kind: SpanKind.SERVER, attributes: { [ATTR_HTTP_REQUEST_METHOD]: method, [ATTR_URL_PATH]: path } },
    parent,
  );
  return { span, context: trace.setSpan(parent, span) };
}

/**
 * Ends a server span with what the response was: named `METHOD /route/:template` (never the path with ids: span
 * names are for grouping), status ERROR for a 5xx (a 4xx is the client's doing, not a failure of the server).
 */
export function endHttpServerSpan(span: Span, method: string, route: string | null, status: number): void {
  if (route) {
    span.updateName(`${method} ${route}`);
    span.setAttribute(ATTR_HTTP_ROUTE, route);
  }
  span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/**
 * Runs `fn` inside a child span of the active one (active while it runs), ended when it settles: ERROR with the
 * exception when it throws. With tracing off the span is the API's no-op.
 */
export async function inSpan<T>(name: string, fn: (span: Span) => Promise<T>): Promise<T> {
  return kilnTracer().startActiveSpan(name, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}
