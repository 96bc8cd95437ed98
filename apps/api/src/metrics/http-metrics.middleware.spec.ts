import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { NextFunction, Request, Response } from 'express';
import { ApiMetrics, routeLabel } from './api-metrics.js';
import { httpMetricsMiddleware } from './http-metrics.middleware.js';

function finish(metrics: ApiMetrics, req: Partial<Request>, status: number): void {
  const res = Object.assign(new EventEmitter(), { statusCode: status }) as unknown as Response;
  let called = false;
  httpMetricsMiddleware(metrics)(req as Request, res, (() => (called = true)) as NextFunction);
  assert.equal(called, true);
  res.emit('finish');
}

test('labels a request with its route template, not the path with ids', async () => {
  const metrics = new ApiMetrics();
  const id = '0b9d6c1e-55a4-4c8e-9d7e-2f1a3b4c5d6e';
  const req = { method: 'GET', url: `/v1/compilations/${id}`, baseUrl: '', route: { path: '/v1/compilations/:id' } };
  finish(metrics, req, 200);
  finish(metrics, { ...req, url: '/v1/compilations/another' }, 404);
  const text = await metrics.registry.metrics();
  assert.match(text, /kiln_http_requests_total\{method="GET",route="\/v1\/compilations\/:id",status="200"\} 1/);
  assert.match(text, /kiln_http_requests_total\{method="GET",route="\/v1\/compilations\/:id",status="404"\} 1/);
  assert.match(
    text,
    /kiln_http_request_duration_seconds_count\{method="GET",route="\/v1\/compilations\/:id",status="200"\} 1/,
  );
  assert.doesNotMatch(text, new RegExp(id));
});

test('a request no route matched is labelled unmatched, whatever its path', async () => {
  const metrics = new ApiMetrics();
  finish(metrics, { method: 'GET', url: '/no/such/thing/123' }, 404);
  const text = await metrics.registry.metrics();
  assert.match(text, /kiln_http_requests_total\{method="GET",route="unmatched",status="404"\} 1/);
  assert.doesNotMatch(text, /no\/such/);
});

test('routeLabel joins a router mount path to the route template', () => {
  assert.equal(routeLabel({ baseUrl: '/v1', route: { path: '/models/:id' } }), '/v1/models/:id');
  assert.equal(routeLabel({}), 'unmatched');
});
