import type { NextFunction, Request, Response } from 'express';
import { routeLabel, type ApiMetrics } from './api-metrics.js';

/**
 * Express middleware that counts and times every request once its response is finished. It reads the route on
 * `finish` rather than on entry because Express sets `req.route` only when a route matches, after this middleware
 * ran; an interceptor would miss requests refused by guards, pipes and 404s.
 */
export function httpMetricsMiddleware(metrics: ApiMetrics) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const start = process.hrtime.bigint();
    res.once('finish', () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      metrics.observeRequest(req.method, routeLabel(req), res.statusCode, seconds);
    });
    next();
  };
}
