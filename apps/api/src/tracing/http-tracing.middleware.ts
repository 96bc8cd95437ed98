import { context } from '@opentelemetry/api';
import type { NextFunction, Request, Response } from 'express';
import { endHttpServerSpan, startHttpServerSpan } from '@kiln/tracing';
import { routeLabel } from '../metrics/api-metrics.js';

/**
 * Express middleware that makes the server span of each request and runs the rest of the request inside it, so a
 * Temporal workflow the request starts joins the request's trace (the client interceptor reads the active span).
 * Installed first, and only when tracing is on. The route template is read when the response is finished, as for
 * the metrics (Express knows it only once a route matched); a request the client abandoned ends on `close`.
 */
export function httpTracingMiddleware() {
  return (req: Request, res: Response, next: NextFunction): void => {
    const { span, context: requestContext } = startHttpServerSpan(req.method, req.path, req.headers);
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      const route = routeLabel(req);
      endHttpServerSpan(span, req.method, route === 'unmatched' ? null : route, res.statusCode);
    };
    res.once('finish', end);
    res.once('close', end);
    context.with(requestContext, next);
  };
}
