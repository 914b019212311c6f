// `moekit dashboard`'s server (hono on node:http): the bundled page (built into
// dist/dashboard-page by scripts/build-dashboard.mjs, nothing fetched at run time), the run's
// files as JSON, and a server-sent event stream that follows results.json and every
// variant's log.jsonl as training appends to them. Loopback only unless a host is given.
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { RESULTS_JSON } from '../experiments/ctmoe/ablation.js';
import { RequestError, RunDir } from './run-dir.js';

/** The page's files (a fixed list: no path from a request reaches the file system). */
const ASSETS: Record<string, string> = { '/': 'index.html', '/app.js': 'app.js', '/app.css': 'app.css' };
const CONTENT_TYPE: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

export const DEFAULT_ASSETS_DIR = fileURLToPath(new URL('../../dist/dashboard-page/', import.meta.url));

export interface DashboardOptions {
  runDir: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** The built page (default: the package's dist/dashboard-page). */
  assetsDir?: string;
  /** How often the event stream looks for new lines (ms, default 250). */
  pollMs?: number;
}

export interface DashboardServer {
  url: string;
  close(): Promise<void>;
}

export function dashboardApp(run: RunDir, assetsDir: string, pollMs = 250): Hono {
  const app = new Hono();
  app.onError((err, c) => {
    if (err instanceof RequestError) return c.json({ error: err.message }, err.status);
    console.error(`dashboard: ${err.message}`);
    return c.json({ error: `internal error: ${err.message}` }, 500);
  });
  app.notFound((c) => c.json({ error: `no such route: ${c.req.method} ${new URL(c.req.url).pathname}` }, 404));

  for (const [route, file] of Object.entries(ASSETS)) {
    app.get(route, (c) => {
      const f = join(assetsDir, file);
      if (!existsSync(f)) throw new RequestError(404, `the dashboard page is not built (${f} is missing): run npm run build`);
      return c.body(readFileSync(f), 200, { 'content-type': CONTENT_TYPE[file.split('.').pop()!]! });
    });
  }
  app.get('/favicon.ico', (c) => c.body(null, 204));
  app.get('/api/run', (c) => c.json({ name: run.root, results: run.results(), variants: run.variants() }));
  app.get('/api/log/:variant', (c) => {
    const from = c.req.query('from') ?? '0';
    if (!/^\d{1,15}$/.test(from))
      throw new RequestError(400, `from must be a byte offset, a non-negative integer (got '${from.slice(0, 40)}')`);
    return c.json(run.readLog(c.req.param('variant'), Number(from)));
  });
  // events: 'run' (results.json and the variant list, at the start and whenever they change),
  // 'log' ({ variant, lines }: every line from the start, then each appended one)
  app.get('/api/events', (c) =>
    streamSSE(c, async (stream) => {
      const offsets = new Map<string, number>();
      let runStamp = '';
      while (!stream.aborted) {
        const variants = run.variants();
        const f = join(run.root, RESULTS_JSON);
        const stamp = `${variants.join(',')}|${existsSync(f) ? statSync(f).mtimeMs : 0}`;
        if (stamp !== runStamp) {
          runStamp = stamp;
          await stream.writeSSE({ event: 'run', data: JSON.stringify({ name: run.root, results: run.results(), variants }) });
        }
        for (const v of variants) {
          const { lines, offset } = run.readLog(v, offsets.get(v) ?? 0);
          offsets.set(v, offset);
          if (lines.length > 0) await stream.writeSSE({ event: 'log', data: JSON.stringify({ variant: v, lines }) });
        }
        await stream.sleep(pollMs);
      }
    }),
  );
  return app;
}

/** Serve a run directory; resolves once listening. */
export function startDashboard(opts: DashboardOptions): Promise<DashboardServer> {
  const run = new RunDir(opts.runDir);
  const app = dashboardApp(run, opts.assetsDir ?? DEFAULT_ASSETS_DIR, opts.pollMs);
  const host = opts.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: host, port: opts.port ?? 0 }, (info: AddressInfo) => {
      const shown = info.family === 'IPv6' ? `[${info.address}]` : info.address;
      resolve({
        url: `http://${shown}:${info.port}/`,
        close: () =>
          new Promise<void>((done) => {
            if ('closeAllConnections' in server) server.closeAllConnections(); // the event streams never end by themselves
            server.close(() => done());
          }),
      });
    });
    server.once('error', reject);
  });
}
