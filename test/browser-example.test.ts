// examples/browser in headless Chromium (Debian's `chromium`, driven by playwright-core): the
// bundle loads in a page and the tiny MoE's loss falls there as it does in Node. Skips where
// Chromium is not installed, unless CI is set (.ci/run installs it).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { buildBrowserExample } from '../examples/browser/build.js';
import { setBackend } from '../src/backend/index.js';
import { trainTinyMoE } from '../examples/browser/train.js';

const CHROMIUM = '/usr/bin/chromium';
const root = fileURLToPath(new URL('../examples/browser/', import.meta.url));
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript' };

const skip = !existsSync(CHROMIUM) && !process.env['CI'] ? `${CHROMIUM} is not installed` : false;

test('examples/browser: a tiny MoE trains in headless Chromium (loss falls as in Node)', { skip, timeout: 120_000 }, async () => {
  await buildBrowserExample();
  const server = createServer((req, res) => {
    const path = join(root, new URL(req.url ?? '/', 'http://x').pathname.replace(/\/$/, '/index.html'));
    if (!path.startsWith(root) || !existsSync(path)) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(readFileSync(path));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as { port: number }).port;
  const profile = mkdtempSync(join(tmpdir(), 'moekit-chromium-'));
  const flags = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ];
  let browser: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | null = null;
  try {
    // a fresh profile each run (Playwright passes it as --user-data-dir)
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: flags, timeout: 60_000 });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${port}/`);
    await page
      .waitForFunction(() => 'moekitResult' in window, undefined, { timeout: 90_000 })
      .catch(() => assert.fail(`no result in the page: ${errors.join('; ')}`));
    const r = (await page.evaluate(() => (window as unknown as { moekitResult: { losses: number[]; backend: string } }).moekitResult)) as {
      losses: number[];
      backend: string;
    };
    assert.equal(r.backend, 'reference');
    assert.ok(r.losses.at(-1)! < 0.5 * r.losses[0]!, `loss falls by half: ${r.losses[0]} -> ${r.losses.at(-1)}`);
    // the same seeded run in Node gives the same losses (the reference backend computes in the same order)
    setBackend('reference');
    const node = trainTinyMoE();
    r.losses.forEach((l, i) =>
      assert.ok(Math.abs(l - node.losses[i]!) <= 1e-5 * (1 + Math.abs(node.losses[i]!)), `step ${i}: page ${l}, node ${node.losses[i]}`),
    );
  } finally {
    await browser?.close();
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
