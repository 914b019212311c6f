// Bundles the dashboard page (src/dashboard/page) with esbuild into dist/dashboard-page (or the
// folder given): index.html, app.css and app.js with Vega, Vega-Lite and vega-embed inside, so
// the page needs nothing from the network. Run by `npm run build`.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';

const root = resolve(import.meta.dirname, '..');
const src = join(root, 'src', 'dashboard', 'page');
const out = resolve(process.argv[2] ?? join(root, 'dist', 'dashboard-page'));
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(src, 'main.ts')],
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'linked',
  outfile: join(out, 'app.js'),
  logLevel: 'warning',
});
for (const f of ['index.html', 'app.css']) copyFileSync(join(src, f), join(out, f));
