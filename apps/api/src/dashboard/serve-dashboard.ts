import { existsSync } from 'node:fs';
import path from 'node:path';
import { type INestApplication, Logger } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';

/** Paths that always belong to the API, never to the dashboard (not even a client-side route of it). */
export function isApiPath(p: string): boolean {
  return (
    p === '/v1' ||
    p.startsWith('/v1/') ||
    p === '/docs' ||
    p.startsWith('/docs/') ||
    p.startsWith('/docs-') ||
    p === '/openapi.json' ||
    p === '/openapi.yaml'
  );
}

const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  // Presigned URLs and events tokens live in URLs: never send them on as a Referer.
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

/**
 * Serves the built dashboard (apps/web/dist) at `/`: its files as they are (hashed assets cached for a
 * year, everything else revalidated), and index.html for every other GET that asks for HTML, so client
 * routes like /models/<id> survive a reload. API paths are never touched: they fall through to Nest, which
 * answers unknown ones with its JSON 404. Registered before Nest's routes (so before body parsing).
 */
export function serveDashboard(app: INestApplication, distDir: string): boolean {
  const logger = new Logger('Dashboard');
  const index = path.join(distDir, 'index.html');
  const adapter = app.getHttpAdapter();
  if (!existsSync(index) || !(adapter instanceof ExpressAdapter)) {
    logger.warn(
      `Dashboard not built (${index} missing): run scripts/setup.sh or npm run build -w @kiln/web, or set KILN_DASHBOARD_DIR.`,
    );
    return false;
  }
  const assets = path.join(distDir, 'assets') + path.sep;
  adapter.useStaticAssets(distDir, {
    index: false,
    redirect: false,
    dotfiles: 'ignore',
    fallthrough: true,
    setHeaders: (res: Response, file: string) => {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
      res.setHeader('Cache-Control', file.startsWith(assets) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  app.use((req: Request, res: Response, next: NextFunction) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || isApiPath(req.path) || !req.accepts('html')) {
      next();
      return;
    }
    // A missing file under /assets/ is a stale page asking for an old bundle: a 404, not index.html.
    if (req.path.startsWith('/assets/')) {
      next();
      return;
    }
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(index, (err) => {
      if (err) next(err);
    });
  });
  logger.log(`Dashboard served at / from ${distDir}`);
  return true;
}
