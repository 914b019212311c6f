// CT-MoE figures and report from a small synthetic results object: the specs carry the right
// data (fig2's moving average, fig4's outlined cells, fig11's best PPL), every figure renders to
// SVG + PNG with its axis titles, and report.html holds the table rows and the reading.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PAPER_TABLE, type CtMoeAblationResults } from '../src/experiments/ctmoe/ablation.js';
import { TINY_PRESET, VARIANTS } from '../src/experiments/ctmoe/config.js';
import {
  FIG2_WINDOW,
  ablationTable,
  allFigures,
  fig11AblationTable,
  fig2Series,
  fig4SHeatmaps,
  fig10SComparison,
  heatmapLayers,
  movingAverage,
  spreadLabels,
  writeAllFigures,
} from '../src/experiments/ctmoe/figures/index.js';
import { readingOf, renderReport, tableText, writeReport } from '../src/experiments/ctmoe/report.js';
import type { CtMoeLogEntry, CtMoeVariantResult } from '../src/experiments/ctmoe/train.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const N = 4;
const L = 3;
const STEPS = 20;
const cfg = { ...TINY_PRESET, numExperts: N, nLayer: L, steps: STEPS, logEvery: 5, topK: 3 };

/** A row-stochastic S with zero diagonal; row i puts `peak` on partner (i+1) mod N. */
function sMatrix(peak: number, layer: number): number[][] {
  return Array.from({ length: N }, (_, i) =>
    Array.from({ length: N }, (_, j) => {
      if (i === j) return 0;
      const target = (i + 1 + layer) % N === i ? (i + 2) % N : (i + 1 + layer) % N;
      return j === target ? peak : (1 - peak) / (N - 2);
    }),
  );
}

// per-variant: mixed PPL (Full best on code and mixed, NoRouting best on prose)
const PPL: Record<string, { code: number; prose: number; mixed: number }> = {
  'CT-MoE-Full': { code: 30, prose: 60, mixed: 40 },
  StandardMoE: { code: 35, prose: 62, mixed: 45 },
  'CT-MoE-NoCollab': { code: 36, prose: 61, mixed: 46 },
  'CT-MoE-NoRouting': { code: 31, prose: 55, mixed: 41 },
};

function variantResult(k: number): CtMoeVariantResult {
  const v = VARIANTS[k]!;
  const hasS = v.flags.useTopology;
  const trainLoss = Array.from({ length: STEPS }, (_, s) => 6 - 0.1 * s + 0.3 * Math.sin(s * (k + 1)));
  const logs: CtMoeLogEntry[] = [5, 10, 15, 20].map((step, i) => ({
    step,
    loss: trainLoss[step - 1]!,
    ce: trainLoss[step - 1]! - 0.03,
    valPpl: 200 / (i + 1) + k,
    routingEntropy: Math.log(N) - 0.05 / (i + 1),
    routingEntropyPerLayer: Array(L).fill(Math.log(N) - 0.05 / (i + 1)),
    sEntropy: hasS ? Math.log(N - 1) - 0.1 * i : null,
    sEntropyPerLayer: hasS ? Array(L).fill(Math.log(N - 1) - 0.1 * i) : null,
    sMax: hasS ? 1 / (N - 1) + 0.1 * i : null,
    sMaxPerLayer: hasS ? Array(L).fill(1 / (N - 1) + 0.1 * i) : null,
    lr: 1e-3,
    sLr: 1e-1,
    elapsedSec: step * 0.1,
  }));
  const finalS = hasS ? Array.from({ length: L }, (_, l) => sMatrix(0.5 + 0.1 * k + 0.05 * l, l)) : null;
  return {
    key: v.key,
    label: v.label,
    color: v.color,
    flags: v.flags,
    config: cfg,
    nParams: 1_234_567 + (hasS ? L * N * N : 0),
    nTopologyParams: hasS ? L * N * N : 0,
    steps: STEPS,
    trainLoss,
    trainCe: trainLoss.map((x) => x - 0.03),
    logs,
    domainPpl: PPL[v.key]!,
    routingFreq: { code: [0.4, 0.3, 0.2, 0.1], prose: [0.1, 0.2, 0.3, 0.4] },
    specialisation: [0.6, 0.2, -0.2, -0.6],
    finalS,
    eigenspectrum: hasS
      ? { eigenvalues: [1, 0.2, -0.3, -0.5], normalizedAbs: [0.5, 0.1, 0.15, 0.25], reference: 1 / N, semantics: 'test' }
      : null,
    timing: { trainSec: 2, evalSec: 0.5, secPerStep: 0.1, resumedFromStep: null },
    backend: 'test backend',
  };
}

function synthResults(): CtMoeAblationResults {
  return {
    format: 'moekit-ctmoe-ablation',
    version: 1,
    preset: 'tiny',
    config: cfg,
    order: VARIANTS.map((v) => v.key),
    variants: Object.fromEntries(
      VARIANTS.map((v, k) => [v.key, { label: v.label, color: v.color, status: 'done' as const, result: variantResult(k) }]),
    ),
    reference: { sEntropyUniform: Math.log(N - 1), sMaxUniform: 1 / (N - 1), routingEntropyUniform: Math.log(N), eigUniform: 1 / N },
    paperTable: PAPER_TABLE,
    notes: ['a synthetic note'],
    wallSec: Object.fromEntries(VARIANTS.map((v) => [v.key, 3])),
    updatedAt: '2026-01-01T00:00:00.000Z',
  };
}

// biome-ignore lint/suspicious/noExplicitAny: Vega-Lite specs are walked generically
type AnySpec = Record<string, any>;
/** Every inline data array in a spec (depth first). */
function inlineData(spec: unknown): AnySpec[][] {
  const out: AnySpec[][] = [];
  const walk = (x: unknown) => {
    if (Array.isArray(x)) x.forEach(walk);
    else if (x && typeof x === 'object') {
      const o = x as AnySpec;
      if (o['data'] && Array.isArray(o['data'].values)) out.push(o['data'].values);
      for (const [k, v] of Object.entries(o)) if (k !== 'data') walk(v);
    }
  };
  walk(spec);
  return out;
}

test('movingAverage is the trailing mean over w values (valid mode)', () => {
  assert.deepEqual(movingAverage([1, 2, 3, 4, 5], 3), [
    { step: 3, value: 2 },
    { step: 4, value: 3 },
    { step: 5, value: 4 },
  ]);
  assert.deepEqual(movingAverage([2, 4], 7), [{ step: 2, value: 3 }]);
  assert.deepEqual(movingAverage([], 7), []);
  assert.throws(() => movingAverage([1], 0), /w must be an integer >= 1/);
});

test('fig2 plots the 7-step moving average of each variant’s per-step loss', () => {
  const results = synthResults();
  const series = fig2Series(results);
  assert.equal(FIG2_WINDOW, 7);
  for (const v of VARIANTS) {
    const loss = results.variants[v.key]!.result!.trainLoss;
    const mine = series.filter((p) => p.variant === v.label);
    assert.equal(mine.length, STEPS - 6);
    mine.forEach((p, i) => {
      // hand-computed: mean of loss[i..i+6], plotted at step i+7
      let sum = 0;
      for (let j = i; j < i + 7; j++) sum += loss[j]!;
      assert.equal(p.step, i + 7);
      assert.ok(Math.abs(p.value - sum / 7) < 1e-12, `${v.key} step ${p.step}`);
    });
  }
});

test('fig4 outlines exactly the cells with S > 1/(N-1), for layers {0, n/2, n-1}; Standard has no fig4', () => {
  const results = synthResults();
  assert.deepEqual(heatmapLayers(3), [0, 1, 2]);
  assert.deepEqual(heatmapLayers(2), [0, 1]);
  assert.deepEqual(heatmapLayers(6), [0, 3, 5]);
  assert.equal(fig4SHeatmaps(results, 'StandardMoE'), null);
  const spec = fig4SHeatmaps(results, 'CT-MoE-Full') as AnySpec;
  const S = results.variants['CT-MoE-Full']!.result!.finalS!;
  const thr = 1 / (N - 1);
  assert.equal(spec['hconcat'].length, 3);
  spec['hconcat'].forEach((panel: AnySpec, p: number) => {
    const layer = heatmapLayers(L)[p]!;
    const cells = panel['layer'][0]['data'].values as { i: number; j: number; s: number }[];
    const outline = panel['layer'][1]['data'].values as { i: number; j: number; s: number }[];
    assert.equal(cells.length, N * N);
    const expected: string[] = [];
    for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) if (S[layer]![i]![j]! > thr) expected.push(`${i},${j}`);
    assert.ok(expected.length > 0 && expected.length < N * N);
    assert.deepEqual(outline.map((c) => `${c.i},${c.j}`).sort(), expected.sort());
    assert.equal(panel['layer'][1].mark.filled, false);
    assert.equal(panel['layer'][0].encoding.color.scale.scheme, 'yelloworangered');
  });
});

test('fig10 puts the final-layer S of every variant with S on one colour scale', () => {
  const results = synthResults();
  const spec = fig10SComparison(results) as AnySpec;
  assert.equal(spec['hconcat'].length, 3);
  const vmax = Math.max(
    ...VARIANTS.filter((v) => v.flags.useTopology).flatMap((v) => results.variants[v.key]!.result!.finalS![L - 1]!.flat()),
  );
  for (const panel of spec['hconcat']) assert.deepEqual(panel['layer'][0].encoding.color.scale.domain, [0, vmax]);
  assert.ok(JSON.stringify(spec).includes('Standard MoE has no S'));
});

test('fig11 and the table mark the lowest PPL of each column as best', () => {
  const results = synthResults();
  const t = ablationTable(results);
  assert.deepEqual(t.best, { code: 'CT-MoE-Full', prose: 'CT-MoE-NoRouting', mixed: 'CT-MoE-Full' });
  const values = inlineData(fig11AblationTable(results)).flat() as { model: string; column: string; text: string; best: boolean }[];
  const best = values.filter((v) => v.best).map((v) => `${v.model}|${v.column}|${v.text}`);
  assert.deepEqual(
    best.sort(),
    ['CT-MoE (Full)|Code PPL|30.00', 'CT-MoE (Full)|Mixed PPL|40.00', 'CT-MoE (No Routing)|Prose PPL|55.00'].sort(),
  );
  for (const col of ['Code PPL', 'Prose PPL', 'Mixed PPL']) {
    const cells = values.filter((v) => v.column === col);
    const min = Math.min(...cells.map((c) => Number(c.text)));
    assert.equal(cells.find((c) => c.best)!.text, min.toFixed(2));
  }
  // Standard: no S, no switches
  const std = values.filter((v) => v.model === 'Standard MoE');
  assert.equal(std.find((v) => v.column === 'S Max')!.text, '—');
  assert.equal(std.find((v) => v.column === 'Route')!.text, '✗');
  assert.match(tableText(results), /CT-MoE \(No Routing\)\s.*55\.00\*/);
});

test('spreadLabels keeps neighbours at least the gap apart', () => {
  const ys = spreadLabels([10, 10.1, 20, 10.05], 1);
  const sorted = [...ys].sort((a, b) => a - b);
  for (let k = 1; k < sorted.length; k++) assert.ok(sorted[k]! - sorted[k - 1]! >= 1 - 1e-9);
  assert.ok(ys[0]! < ys[3]! && ys[3]! < ys[1]!); // order kept
});

test('writeAllFigures writes 11+ figure pairs with axis titles; report.html holds the table and the reading', async () => {
  const results = synthResults();
  const dir = mkdtempSync(join(tmpdir(), 'ctmoe-figs-'));
  dirs.push(dir);
  const written = await writeAllFigures(results, dir);
  const names = written.map((w) => w.name);
  assert.deepEqual(names, [
    'fig1_val_ppl',
    'fig2_train_loss',
    'fig3_routing_entropy',
    'fig4_S_CT-MoE-Full',
    'fig4_S_CT-MoE-NoCollab',
    'fig4_S_CT-MoE-NoRouting',
    'fig5_S_entropy',
    'fig6_S_max',
    'fig7_domain_ppl',
    'fig8_specialization',
    'fig9_eigenspectrum',
    'fig10_S_comparison',
    'fig11_ablation_table',
  ]);
  const files = readdirSync(join(dir, 'figures'));
  assert.equal(files.length, 2 * names.length);
  const axisTitles: Record<string, string[]> = {
    fig1_val_ppl: ['training step', 'validation PPL (log)', 'validation PPL'],
    fig2_train_loss: ['training step', 'training loss (MA 7)'],
    fig3_routing_entropy: ['routing entropy (nats)', 'uniform: log 4'],
    'fig4_S_CT-MoE-Full': ['expert j (partner)', 'expert i', 'layer 0', 'layer 1', 'layer 2 (last)'],
    fig5_S_entropy: ['S row entropy (nats)', 'Standard MoE has no S'],
    fig6_S_max: ['max off-diagonal S_ij'],
    fig7_domain_ppl: ['validation domain', 'perplexity (final)'],
    fig8_specialization: ['specialisation s_e', 'routing frequency', 'expert'],
    fig9_eigenspectrum: ['normalised |λ_k|', 'eigenvalue index k'],
    fig10_S_comparison: ['expert j (partner)', 'CT-MoE (No Routing)'],
    fig11_ablation_table: ['Mixed PPL', 'Routing Ent', 'CT-MoE (No Collaboration)'],
  };
  for (const w of written) {
    const svg = readFileSync(w.svg, 'utf8');
    assert.match(svg, /^<svg/);
    assert.ok(svg.length > 2000, `${w.name}: svg too small`);
    assert.ok(statSync(w.png).size > 5000, `${w.name}: png too small`);
    for (const t of axisTitles[w.name] ?? []) assert.ok(svg.includes(t.replace(/&/g, '&amp;')), `${w.name}: missing '${t}'`);
  }

  const file = await writeReport(results, dir, { figures: written });
  const html = readFileSync(file, 'utf8');
  for (const v of VARIANTS) assert.ok(html.includes(`<tr data-variant="${v.key}">`), `row ${v.key}`);
  assert.match(html, /<td class="best">30\.00<\/td>/);
  assert.match(html, /<td class="best">55\.00<\/td>/);
  for (const n of names) assert.ok(html.includes(`src="figures/${n}.png"`), `figure ${n}`);
  assert.ok(html.includes('Lowest final perplexity per domain'));
  assert.ok(html.includes('top_k = 3, whereas the paper used 2'));
  assert.ok(html.includes('single seed'));
  assert.ok(html.includes('Wall-clock timings'));
  assert.ok(html.includes('a synthetic note'));
  assert.equal(renderReport(results, { figures: written }), html);
});

test('the report of a bf16 run names the precision and marks it as set over the preset, which leaves it unset', () => {
  const results = synthResults();
  results.config = { ...results.config, precision: 'bf16' };
  results.precision = 'bf16';
  const html = renderReport(results, { figures: [] });
  assert.match(
    html,
    /<tr class="changed"><th scope="row">precision<\/th><td>&quot;bf16&quot;<\/td><td>overridden \(preset: unset\)<\/td><\/tr>/,
  );
  assert.ok(html.includes('precision <code>bf16</code>'));
});

test('the reading follows the numbers', () => {
  const results = synthResults();
  const text = readingOf(results).join('\n');
  assert.match(text, /code: CT-MoE \(Full\) \(30\.00; next CT-MoE \(No Routing\) 31\.00/);
  assert.match(text, /prose: CT-MoE \(No Routing\) \(55\.00/);
  // ordering: Full 40 < NoRouting 41 < Standard 45 < NoCollab 46 — the paper's order
  assert.match(text, /6 of 6 pairwise comparisons go the same way \(the same ordering\)/);
  assert.match(text, /Here that holds/);
  assert.match(text, /S max 0\.633/); // last logged S max 1/3 + 0.3
  // k = 2: the reading says message passing gets no S gradient
  const k2 = synthResults();
  k2.config = { ...k2.config, topK: 2 };
  assert.match(readingOf(k2).join('\n'), /uses top_k = 2, as the paper.*no gradient to S/);
  // a pending variant
  const pending = synthResults();
  pending.variants['CT-MoE-NoRouting'] = { ...pending.variants['CT-MoE-NoRouting']!, status: 'pending', result: null };
  assert.match(readingOf(pending).join('\n'), /1 of 4 variants have not finished \(CT-MoE-NoRouting\)/);
  assert.equal(allFigures(pending).filter((f) => f.name.startsWith('fig4_')).length, 2);
  assert.equal(ablationTable(pending).rows.find((r) => r.key === 'CT-MoE-NoRouting')!.status, 'pending');
});
