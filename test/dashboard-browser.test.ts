// The dashboard in a real browser (Debian's chromium through playwright-core, loopback only):
// over a finished micro run every chart renders with the series the run implies, the token
// view shows the recorded experts of a known token, and a run started after the page was
// opened shows up in it while it trains. Screenshots of every view go to test/output/dashboard/
// (or $MOEKIT_TEST_OUTPUT/dashboard).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { LOG_JSONL, OVERLOAD_FACTOR, type LogLine, type VariantLog, emptyVariantLog, foldLog } from '../src/dashboard/log-format.js';
import { type DashboardServer, startDashboard } from '../src/dashboard/server.js';
import { runAblation } from '../src/experiments/ctmoe/index.js';
import { randn } from '../src/index.js';
import { moeConfig } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { RoutingRecorder } from '../src/moe/routing/index.js';
import { Module } from '../src/nn/module.js';
import { Generator } from '../src/tensor/random.js';
import { MAX_STEP_BINS } from '../src/dashboard/page/charts.js';
import { launchChromium } from './helpers/chromium.js';
import { MICRO, synthData } from './helpers/ctmoe-micro.js';

// what the functions evaluated in the page use of it (the test's own program has no DOM types)
declare const document: {
  body: { dataset: Record<string, string | undefined> };
  querySelector(sel: string): { textContent: string | null; getAttribute(name: string): string | null } | null;
  querySelectorAll(sel: string): { length: number };
};
declare const DataTransfer: new () => { items: { add(file: File): void } };

const ROOT = join(import.meta.dirname, '..');
const SHOTS = join(process.env['MOEKIT_TEST_OUTPUT'] ?? join(ROOT, 'test', 'output'), 'dashboard');
const tmp = mkdtempSync(join(tmpdir(), 'moekit-dashweb-'));
const page = join(tmp, 'page');
const finished = join(tmp, 'finished');
const servers: DashboardServer[] = [];
let browser: Awaited<ReturnType<typeof launchChromium>>;
let child: ChildProcess | null = null;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  const b = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-dashboard.mjs'), page], { encoding: 'utf8' }); // this checkout's page, not a stale dist
  assert.equal(b.status, 0, b.stderr);
  runAblation({ preset: MICRO, outDir: finished, variants: ['CT-MoE-Full', 'StandardMoE'], data: synthData() });
  browser = await launchChromium();
});
after(async () => {
  child?.kill();
  await browser?.close();
  for (const s of servers) await s.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function open(runDir: string): Promise<Page> {
  const server = await startDashboard({ runDir, assetsDir: page, port: 0, pollMs: 100 });
  servers.push(server);
  const p = await browser.context.newPage();
  const errors: string[] = [];
  p.on('pageerror', (e) => errors.push(e.message));
  p.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await p.goto(server.url);
  (p as Page & { errors: string[] }).errors = errors;
  return p;
}
/** Wait until the page has rendered everything it has received (it renders at most every 300 ms). */
const settle = (p: Page) => p.waitForFunction(() => document.body.dataset['busy'] === '0', null, { timeout: 20_000 });
const count = (p: Page, sel: string) => p.locator(sel).count();

const readLog = (variant: string, run = finished) =>
  foldLog(
    emptyVariantLog(),
    readFileSync(join(run, variant, LOG_JSONL), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as LogLine),
  );
/** Cells (step, layer, expert) the load view must mark: no slot (dead), or over OVERLOAD_FACTOR / N of the layer's slots. */
function markedCells(log: VariantLog): number {
  let n = 0;
  for (const s of log.steps)
    for (const row of s.load)
      for (const c of row) n += c === 0 || c / row.reduce((a, v) => a + v, 0) > OVERLOAD_FACTOR / row.length ? 1 : 0;
  return n;
}

test('over a finished run, every chart renders with the series and cells the run implies', async () => {
  const p = await open(finished);
  await p.waitForFunction(() => document.querySelectorAll('#status [data-step="8"]').length === 2, null, { timeout: 20_000 });
  await settle(p);
  const { nLayer: L, numExperts: N } = MICRO;
  // curves: one line per variant, in its colour, in the loss chart and in the perplexity chart
  const colors = ['#1D9E75', '#888780'];
  for (const chart of ['concat_0_marks', 'concat_1_layer_0_marks']) {
    const lines = await p.locator(`#view-curves g.mark-line.${chart} path`).all();
    assert.deepEqual((await Promise.all(lines.map((l) => l.getAttribute('stroke')))).sort(), colors, chart);
    for (const l of lines) assert.ok(((await l.getAttribute('d')) ?? '').length > 20, `${chart}: a drawn line`);
  }
  // routing entropy: one line per (variant, layer)
  assert.equal(await count(p, '#view-entropy g.mark-line.role-mark path'), 2 * L);
  // load heatmaps of the selected variant (CT-MoE-Full): steps x experts x layers, and a mark per dead / overloaded cell
  const full = readLog('CT-MoE-Full');
  assert.equal(await count(p, '#view-load g.mark-rect.role-mark path'), full.steps.length * N * L);
  console.log(`finished run: ${markedCells(full)} dead or overloaded (step, layer, expert) cells`);
  assert.equal(await count(p, '#view-load g.mark-symbol.role-mark path'), markedCells(full));
  // S: N x N cells and values per layer
  assert.equal(await count(p, '#view-s .chart:not(.trend) g.mark-rect.role-mark path'), L * N * N);
  assert.equal(await count(p, '#view-s g.mark-text.role-mark text'), L * N * N);
  // S over the log points: a line per layer of each variant with S (Standard MoE has none)
  assert.equal(await count(p, '#view-s .trend g.mark-line.role-mark path'), L);
  // side by side: a layer x expert grid per variant, two metric bars per variant
  assert.equal(await count(p, '#view-compare g.mark-rect.role-mark path'), 2 * L * N + 2 * 2);
  // Standard MoE: no S; the load view follows the variant selection
  await p.selectOption('#variant', 'StandardMoE');
  await settle(p);
  assert.match((await p.locator('#view-s .chart:not(.trend)').textContent()) ?? '', /no S for this variant/);
  assert.equal(await count(p, '#view-load g.mark-rect.role-mark path'), readLog('StandardMoE').steps.length * N * L);
  await p.selectOption('#variant', 'CT-MoE-Full');
  await settle(p);
  for (const view of ['curves', 'entropy', 'load', 's', 'tokens', 'compare'])
    await p.locator(`#view-${view}`).screenshot({ path: join(SHOTS, `${view}.png`) });
  await p.screenshot({ path: join(SHOTS, 'page.png'), fullPage: true });
  assert.deepEqual((p as Page & { errors: string[] }).errors, []);
  await p.close();
});

test('the token view shows the experts recorded for a token, per layer, with their weights on hover', async () => {
  const p = await open(finished);
  await p.waitForFunction(() => document.querySelectorAll('#view-tokens .tok').length > 0, null, { timeout: 20_000 });
  const last = readLog('CT-MoE-Full').points.at(-1)!;
  const t = 11;
  for (const layer of [0, 1]) {
    await p.selectOption('#layer', String(layer));
    await settle(p);
    const tok = p.locator(`#view-tokens .tok[data-index="${t}"]`);
    assert.equal(await tok.getAttribute('data-experts'), last.routing.ids[layer]![t]!.join(','));
    const title = (await tok.getAttribute('title')) ?? '';
    for (let l = 0; l < 2; l++) {
      const expected = last.routing.ids[l]![t]!.map((e, k) => `expert ${e} (${last.routing.weights[l]![t]![k]!.toFixed(3)})`).join(', ');
      assert.ok(title.includes(`layer ${l}: ${expected}`), `title '${title}' lacks layer ${l}: ${expected}`);
    }
  }
  assert.equal(await count(p, '#view-tokens .tok'), 2 * MICRO.seqLen);
  await p.close();
});

test('a run started after the page opened appears in it while it trains', async () => {
  const live = join(tmp, 'live');
  mkdirSync(live);
  const p = await open(live);
  await p.waitForFunction(() => /waiting for the first variant/.test(document.querySelector('#status')!.textContent ?? ''), null, {
    timeout: 20_000,
  });
  // the most steps the load view shows a column each (unbinned): ~2 s of training, so that the
  // page shows steps between the first and the last even on a loaded host (100 steps once did not)
  const steps = MAX_STEP_BINS;
  const set = [
    'vocabSize=256',
    'seqLen=16',
    'dModel=16',
    'nHead=2',
    'numExperts=4',
    'batchSize=4',
    'evalBatches=1',
    'freqBatches=1',
    'logEvery=10',
    'warmup=2',
    `checkpointEvery=${steps}`,
  ];
  child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'src', 'cli', 'main.ts'),
      'ablate',
      '--out',
      live,
      '--variants',
      'full',
      '--steps',
      String(steps),
      ...set.flatMap((s) => ['--set', s]),
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<number | null>((res) => child!.once('exit', res));
  // the steps the page shows, sampled until training ends (the log's last step line)
  const shown = new Set<number>();
  const logFile = join(live, 'CT-MoE-Full', LOG_JSONL);
  const trained = () => existsSync(logFile) && readFileSync(logFile, 'utf8').includes(`"kind":"step","step":${steps},`);
  for (const deadline = Date.now() + 90_000; !trained() && child.exitCode === null; ) {
    assert.ok(Date.now() < deadline, 'training did not end in 90 s');
    shown.add(
      await p.evaluate(() => Number(document.querySelector('#status [data-variant="CT-MoE-Full"]')?.getAttribute('data-step') ?? 0)),
    );
    await new Promise((res) => setTimeout(res, 50));
  }
  const midRun = [...shown].filter((s) => s > 0 && s < steps);
  console.log(`live run: the page showed steps ${[...shown].sort((a, b) => a - b).join(', ')} while training`);
  assert.ok(midRun.length >= 2, `the page followed the training (steps shown: ${[...shown].join(', ')})`);
  await p.locator('#view-curves').screenshot({ path: join(SHOTS, 'live-curves.png') });
  assert.equal(await exited, 0);
  await p.waitForFunction(
    (n) => document.querySelector('#status [data-variant="CT-MoE-Full"]')?.getAttribute('data-step') === String(n),
    steps,
    { timeout: 20_000 },
  );
  await settle(p);
  assert.equal(await count(p, '#view-load g.mark-rect.role-mark path'), steps * MICRO.numExperts * MICRO.nLayer);
  const marked = markedCells(readLog('CT-MoE-Full', live));
  console.log(`live run: ${marked} dead or overloaded (step, layer, expert) cells`);
  assert.equal(await count(p, '#view-load g.mark-symbol.role-mark path'), marked);
  assert.match((await p.locator('#status').textContent()) ?? '', /\(done\)/);
  await p.screenshot({ path: join(SHOTS, 'live-done.png'), fullPage: true });
  await p.close();
});

test('without a server, a results.json and a routing recording dropped on the page are shown', async () => {
  // a recording of 3 forwards of a two-layer MoE model
  class TwoLayers extends Module {
    readonly blocks = [0, 1].map(
      (i) =>
        new MoELayer(moeConfig({ hiddenSize: 8, router: { numExperts: 5, topK: 2 }, experts: { intermediateSize: 8 } }), {
          generator: new Generator(i),
        }),
    );
  }
  const model = new TwoLayers().eval();
  const rec = new RoutingRecorder(model).attach();
  for (let i = 0; i < 3; i++) model.blocks.reduce((h, l) => l.forward(h), randn([6, 8], { generator: new Generator(10 + i) }));
  const index = readFileSync(rec.save(join(tmp, 'recording')), 'utf8');
  const p = await browser.context.newPage();
  await p.goto(`file://${join(page, 'index.html')}`);
  const drop = async (name: string, text: string) => {
    const dt = await p.evaluateHandle(
      ([n, t]) => {
        const d = new DataTransfer();
        d.items.add(new File([t], n, { type: 'application/json' }));
        return d;
      },
      [name, text] as const,
    );
    await p.dispatchEvent('body', 'drop', { dataTransfer: dt });
    await p.waitForFunction((n) => document.querySelector('#run-name')?.textContent === n, name, { timeout: 20_000 });
    await settle(p);
  };
  await drop('results.json', readFileSync(join(finished, 'results.json'), 'utf8'));
  const { nLayer: L, numExperts: N } = MICRO;
  assert.equal(await count(p, '#view-curves g.mark-line.concat_0_marks path'), 2, 'a loss line per variant');
  assert.equal(await count(p, '#view-curves g.mark-line.concat_1_layer_0_marks path'), 2, 'a perplexity line per variant');
  assert.equal(await count(p, '#view-s .chart:not(.trend) g.mark-rect.role-mark path'), L * N * N, 'the final S');
  assert.match((await p.locator('#view-load').textContent()) ?? '', /no per-step load recorded/);
  await p.locator('#view-curves').screenshot({ path: join(SHOTS, 'dropped-results-curves.png') });
  await drop('recording.json', index);
  assert.equal(await count(p, '#view-load g.mark-rect.role-mark path'), 3 * 5 * 2, 'forwards x experts x layers');
  await p.locator('#view-load').screenshot({ path: join(SHOTS, 'dropped-recording-load.png') });
  await p.close();
});
