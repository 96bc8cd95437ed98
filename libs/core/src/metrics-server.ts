import http from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import type { Registry } from 'prom-client';

/**
 * Serves `GET /metrics` on its own listener (never a public port), 404 for anything else: the process's prom-client
 * registry, followed by `more()` when given (the worker appends the Temporal SDK's own Prometheus text, which its Rust
 * core serves on a loopback port of its own; one scrape target per process instead of two).
 */
export async function startMetricsServer(
  registry: Registry,
  port: number,
  host: string,
  more?: () => Promise<string>,
): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    Promise.all([registry.metrics(), more?.() ?? ''])
      .then(([own, extra]) => res.writeHead(200, { 'content-type': registry.contentType }).end(own + extra))
      .catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

export function boundPort(server: http.Server): number {
  return (server.address() as AddressInfo).port;
}

/** A free TCP port on 127.0.0.1 (the kernel's pick; released just before the caller binds it). */
export async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === 'string') throw new Error('no loopback port');
  return address.port;
}
