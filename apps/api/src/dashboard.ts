/**
 * The admin dashboard (apps/dashboard: a static single-page app) on the API's own server under /admin/: its build
 * (`npm run dashboard:build` writes apps/dashboard/dist) served as files, and every other page path answered with its
 * index.html (the app routes in the browser, so a reload or a shared link works). Without a build, /admin/ answers 404
 * problem+json saying how to make one, and the API serves everything else as usual. The app holds no secret: it asks
 * for an admin key and sends it to /v1 as a bearer header, like any client.
 */
import type { NestExpressApplication } from '@nestjs/platform-express';
import express from 'express';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BOARD_PATH } from './admin/board';
import { problemBody, ProblemError } from './common/problem';

export const DASHBOARD_PATH = '/admin';
/** Where `vite build` puts the dashboard (apps/dashboard/vite.config.mjs). */
export const DASHBOARD_DIR = resolve(__dirname, '../../dashboard/dist');

/** The page may load only its own files, talk only to this API, and show images it fetched (blob:) or was given (data:). */
const PAGE_HEADERS = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

function notFound(res: Response, slug: string, title: string, detail: string): void {
  res
    .status(404)
    .type('application/problem+json')
    .send(JSON.stringify(problemBody(new ProblemError(404, slug, title, detail))));
}

/** Mounts the dashboard (called by `createApi`); `dir`: where its build is. */
export function mountDashboard(app: Pick<NestExpressApplication, 'use'> | { use(path: string, handler: RequestHandler): unknown }, dir = DASHBOARD_DIR): void {
  const index = join(dir, 'index.html');
  // looked for on each request until found: a build made while the API runs is served without a restart
  let built = false;
  const isBuilt = async () =>
    (built ||= await access(index).then(
      () => true,
      () => false,
    ));
  const files = express.static(dir, {
    index: false,
    setHeaders: (res, path) => {
      // Vite names every asset by its content hash: a new build has new names
      if (path.startsWith(join(dir, 'assets'))) res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
      else res.setHeader('Cache-Control', 'no-cache');
      if (path.endsWith('.html')) res.set(PAGE_HEADERS);
    },
  });

  app.use(DASHBOARD_PATH, (req: Request, res: Response, next: NextFunction) => {
    // bull-board has its own mount below /admin (apps/api/src/admin/board.ts)
    if ((req.method !== 'GET' && req.method !== 'HEAD') || `${DASHBOARD_PATH}${req.path}`.startsWith(BOARD_PATH)) return next();
    // /admin → /admin/: the app's base
    if (req.originalUrl === DASHBOARD_PATH || req.originalUrl.startsWith(`${DASHBOARD_PATH}?`)) {
      return res.redirect(301, `${DASHBOARD_PATH}/${req.originalUrl.slice(DASHBOARD_PATH.length)}`);
    }
    isBuilt().then(
      (ok) => {
        if (!ok) {
          return notFound(
            res,
            'dashboard-not-built',
            'Dashboard not built',
            'the admin dashboard is not built: run `npm run dashboard:build` (apps/dashboard/dist), then reload',
          );
        }
        files(req, res, () => {
          // a missing file (an asset of an older build) is a 404, not the page: a script answered with HTML fails obscurely
          if (/\.[a-z0-9]+$/i.test(req.path)) return notFound(res, 'not-found', 'Not found', `${DASHBOARD_PATH}${req.path} not found`);
          res.set({ ...PAGE_HEADERS, 'Cache-Control': 'no-cache' });
          res.sendFile(index, (err?: Error) => {
            if (err && !res.headersSent) {
              notFound(res, 'dashboard-not-built', 'Dashboard not built', 'the dashboard build went away: run `npm run dashboard:build`');
            }
          });
        });
      },
      (err: unknown) => next(err),
    );
  });
}
