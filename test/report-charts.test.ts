// Charts render headless: the SVG carries the titles, the PNG is a real image with ink on it.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { renderSvg, svgToPng, writeFigure, type ChartSpec } from '../src/report/charts.js';

const spec: ChartSpec = {
  title: 'Validation perplexity',
  width: 200,
  height: 120,
  data: { values: [0, 1, 2, 3].map((s) => ({ step: s * 100, ppl: 50 / (s + 1) })) },
  mark: 'line',
  encoding: {
    x: { field: 'step', type: 'quantitative', title: 'training step' },
    y: { field: 'ppl', type: 'quantitative', title: 'perplexity' },
  },
};

test('renderSvg keeps the title and axis titles in the bundled font', async () => {
  const svg = await renderSvg(spec);
  assert.match(svg, /^<svg/);
  for (const text of ['Validation perplexity', 'training step', 'perplexity']) assert.ok(svg.includes(text), `missing '${text}'`);
  assert.match(svg, /DejaVu Sans/);
});

test('svgToPng gives a PNG of the chart size', async () => {
  const png = await svgToPng(await renderSvg(spec), 1);
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
  // IHDR width/height (big-endian) match the SVG's size at scale 1
  const view = new DataView(png.buffer, png.byteOffset);
  assert.ok(view.getUint32(16) > 200 && view.getUint32(20) > 120);
});

test('writeFigure writes both files atomically', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moekit-fig-'));
  const out = await writeFigure(dir, 'fig', spec);
  assert.ok(readFileSync(out.svg, 'utf8').includes('perplexity'));
  assert.ok(readFileSync(out.png).length > 1000);
});
