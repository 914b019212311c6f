// Vega-Lite specs of the dashboard's charts, from the page's run state (pure: no DOM).
import type { TopLevelSpec } from 'vega-lite';
import { OVERLOAD_FACTOR, type VariantLog } from '../log-format.js';
import { type RunState, type VariantInfo, variantLog, variantsOf } from './state.js';

/** Heatmaps keep at most this many step columns: longer runs are averaged over bins of steps. */
export const MAX_STEP_BINS = 200;

const colorScale = (vs: VariantInfo[]) => ({ domain: vs.map((v) => v.label), range: vs.map((v) => v.color) });
const base = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: { view: { stroke: null } } } as const;

/** Training loss per step and validation perplexity per log point, one line per variant. */
export function curvesSpec(run: RunState): TopLevelSpec {
  const vs = variantsOf(run);
  const loss: object[] = [];
  const ppl: object[] = [];
  for (const v of vs) {
    const log = variantLog(run, v.key);
    for (const s of log?.steps ?? []) if (Number.isFinite(s.loss)) loss.push({ variant: v.label, step: s.step, loss: s.loss }); // a routing recording has no loss
    for (const p of log?.points ?? []) ppl.push({ variant: v.label, step: p.step, ppl: p.entry.valPpl });
  }
  const color = { field: 'variant', type: 'nominal', scale: colorScale(vs), legend: { orient: 'bottom', title: null } } as const;
  return {
    ...base,
    hconcat: [
      {
        title: 'Training loss (CE + LB)',
        width: 380,
        height: 220,
        data: { values: loss },
        mark: { type: 'line', interpolate: 'linear' },
        encoding: {
          x: { field: 'step', type: 'quantitative' },
          y: { field: 'loss', type: 'quantitative', scale: { zero: false } },
          color,
          tooltip: [{ field: 'variant' }, { field: 'step' }, { field: 'loss', format: '.4f' }],
        },
      },
      {
        title: 'Validation perplexity (mixed)',
        width: 380,
        height: 220,
        data: { values: ppl },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'step', type: 'quantitative' },
          y: { field: 'ppl', type: 'quantitative', scale: { type: 'log' } },
          color,
          tooltip: [{ field: 'variant' }, { field: 'step' }, { field: 'ppl', format: '.2f' }],
        },
      },
    ],
  } as TopLevelSpec;
}

/** Routing entropy per layer over the log points, one line per (variant, layer), and log N. */
export function entropySpec(run: RunState): TopLevelSpec {
  const vs = variantsOf(run);
  const rows: object[] = [];
  let N = 0;
  for (const v of vs) {
    const log = variantLog(run, v.key);
    N = Math.max(N, log?.start?.numExperts ?? 0);
    for (const p of log?.points ?? [])
      p.entry.routingEntropyPerLayer.forEach((h, l) => rows.push({ variant: v.label, layer: `layer ${l}`, step: p.step, entropy: h }));
  }
  return {
    ...base,
    title: `Routing entropy per layer (uniform: log ${N} = ${Math.log(Math.max(N, 1)).toFixed(3)})`,
    width: 780,
    height: 240,
    layer: [
      {
        data: { values: rows },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'step', type: 'quantitative' },
          y: { field: 'entropy', type: 'quantitative', scale: { zero: false }, title: 'routing entropy (nats)' },
          color: { field: 'variant', type: 'nominal', scale: colorScale(vs), legend: { orient: 'bottom', title: null } },
          strokeDash: { field: 'layer', type: 'nominal', legend: { orient: 'bottom', title: null } },
          detail: [{ field: 'variant' }, { field: 'layer' }],
          tooltip: [{ field: 'variant' }, { field: 'layer' }, { field: 'step' }, { field: 'entropy', format: '.4f' }],
        },
      },
      {
        data: { values: [{ ref: Math.log(Math.max(N, 1)) }] },
        mark: { type: 'rule', strokeDash: [2, 2], color: '#999' },
        encoding: { y: { field: 'ref', type: 'quantitative' } },
      },
    ],
  } as TopLevelSpec;
}

export interface LoadCell {
  layer: number;
  expert: number;
  /** First step of the bin. */
  step: number;
  /** Mean share of the layer's slots over the bin's steps (uniform: 1 / N). */
  share: number;
  dead: boolean;
  overloaded: boolean;
}

/** Per-layer expert load over steps, binned to at most MAX_STEP_BINS columns. Dead: no slot in any step of the bin; overloaded: mean share above OVERLOAD_FACTOR / N. */
export function loadCells(log: VariantLog): LoadCell[] {
  const steps = log.steps.filter((s) => s.load.length > 0);
  if (steps.length === 0) return [];
  const L = steps[0]!.load.length;
  const N = steps[0]!.load[0]!.length;
  const bin = Math.ceil(steps.length / MAX_STEP_BINS);
  const cells: LoadCell[] = [];
  for (let b = 0; b < steps.length; b += bin) {
    const group = steps.slice(b, b + bin);
    for (let l = 0; l < L; l++) {
      for (let e = 0; e < N; e++) {
        let share = 0;
        let any = 0;
        for (const s of group) {
          const row = s.load[l]!;
          const total = row.reduce((a, x) => a + x, 0);
          share += total > 0 ? row[e]! / total : 0;
          any += row[e]!;
        }
        share /= group.length;
        cells.push({ layer: l, expert: e, step: group[0]!.step, share, dead: any === 0, overloaded: share > OVERLOAD_FACTOR / N });
      }
    }
  }
  return cells;
}

/** One heatmap per layer: steps x experts, coloured by load share; dead (x) and overloaded (triangle) marked. */
export function loadSpec(log: VariantLog, label: string): TopLevelSpec {
  const cells = loadCells(log);
  const N = log.start?.numExperts ?? 1;
  const K = log.start?.topK ?? 1; // an expert gets at most one slot of each token's k
  const x = { field: 'step', type: 'ordinal', axis: { labelOverlap: true, title: 'step' } } as const;
  const y = { field: 'expert', type: 'ordinal', title: 'expert' } as const;
  return {
    ...base,
    title: `${label}: share of each layer's slots per expert (uniform 1/${N}); ✕ dead, ▲ over ${OVERLOAD_FACTOR}/${N}`,
    data: { values: cells },
    facet: { row: { field: 'layer', type: 'ordinal', header: { labelExpr: "'layer ' + datum.value" }, title: null } },
    spec: {
      width: 720,
      height: Math.max(60, 14 * N),
      layer: [
        {
          mark: 'rect',
          encoding: {
            x,
            y,
            color: { field: 'share', type: 'quantitative', scale: { scheme: 'blues', domain: [0, 1 / K] } },
            tooltip: [
              { field: 'layer' },
              { field: 'expert' },
              { field: 'step' },
              { field: 'share', format: '.3f' },
              { field: 'dead' },
              { field: 'overloaded' },
            ],
          },
        },
        {
          transform: [{ filter: 'datum.dead' }],
          mark: { type: 'point', shape: 'cross', angle: 45, color: '#d62728', filled: true, size: 70 },
          encoding: { x, y },
        },
        {
          transform: [{ filter: 'datum.overloaded' }],
          mark: { type: 'point', shape: 'triangle-up', color: '#ff7f0e', stroke: 'white', strokeWidth: 0.5, filled: true, size: 70 },
          encoding: { x, y },
        },
      ],
    },
  } as TopLevelSpec;
}

/** S of every layer at one log point, as N x N heatmaps with their values. */
export function sSpec(s: number[][][], step: number, label: string): TopLevelSpec {
  const cells = s.flatMap((m, l) => m.flatMap((row, i) => row.map((v, j) => ({ layer: l, from: i, to: j, s: v }))));
  const enc = { x: { field: 'to', type: 'ordinal', title: 'expert j' }, y: { field: 'from', type: 'ordinal', title: 'expert i' } } as const;
  return {
    ...base,
    title: `${label}: collaboration matrix S (row-stochastic) at step ${step}`,
    data: { values: cells },
    facet: { column: { field: 'layer', type: 'ordinal', header: { labelExpr: "'layer ' + datum.value" }, title: null } },
    spec: {
      width: 200,
      height: 200,
      layer: [
        {
          mark: 'rect',
          encoding: {
            ...enc,
            color: { field: 's', type: 'quantitative', scale: { scheme: 'greens', domain: [0, 1] } },
            tooltip: [{ field: 'layer' }, { field: 'from' }, { field: 'to' }, { field: 's', format: '.4f' }],
          },
        },
        {
          mark: { type: 'text', fontSize: 9 },
          encoding: {
            ...enc,
            text: { field: 's', type: 'quantitative', format: '.2f' },
            color: { condition: { test: 'datum.s > 0.5', value: 'white' }, value: 'black' },
          },
        },
      ],
    },
  } as TopLevelSpec;
}

/** How S evolves: its largest off-diagonal entry per layer over the log points, one line per (variant, layer) with S, and 1/(N-1) (uniform). */
export function sTrendSpec(run: RunState): TopLevelSpec | null {
  const vs = variantsOf(run);
  const rows: object[] = [];
  let N = 0;
  for (const v of vs) {
    const log = variantLog(run, v.key);
    N = Math.max(N, log?.start?.numExperts ?? 0);
    for (const p of log?.points ?? [])
      p.entry.sMaxPerLayer?.forEach((m, l) => rows.push({ variant: v.label, layer: `layer ${l}`, step: p.step, sMax: m }));
  }
  if (rows.length === 0) return null;
  return {
    ...base,
    title: `Largest off-diagonal S entry per layer (uniform: 1/${N - 1})`,
    width: 780,
    height: 180,
    layer: [
      {
        data: { values: rows },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'step', type: 'quantitative' },
          y: { field: 'sMax', type: 'quantitative', title: 'max S[i][j], i ≠ j' },
          color: { field: 'variant', type: 'nominal', scale: colorScale(vs), legend: { orient: 'bottom', title: null } },
          strokeDash: { field: 'layer', type: 'nominal', legend: { orient: 'bottom', title: null } },
          detail: [{ field: 'variant' }, { field: 'layer' }],
          tooltip: [{ field: 'variant' }, { field: 'layer' }, { field: 'step' }, { field: 'sMax', format: '.4f' }],
        },
      },
      {
        data: { values: [{ ref: 1 / Math.max(1, N - 1) }] },
        mark: { type: 'rule', strokeDash: [2, 2], color: '#999' },
        encoding: { y: { field: 'ref', type: 'quantitative' } },
      },
    ],
  } as TopLevelSpec;
}

/** Side by side: each variant's mean load share per (layer, expert) over its run, and its latest metrics. */
export function compareSpec(run: RunState): TopLevelSpec {
  const vs = variantsOf(run);
  const cells: object[] = [];
  const metrics: object[] = [];
  for (const v of vs) {
    const log = variantLog(run, v.key);
    if (!log) continue;
    const byKey = new Map<string, { sum: number; n: number }>();
    for (const c of loadCells(log)) {
      const k = `${c.layer}/${c.expert}`;
      const a = byKey.get(k) ?? { sum: 0, n: 0 };
      a.sum += c.share;
      a.n++;
      byKey.set(k, a);
    }
    for (const [k, a] of byKey) {
      const [layer, expert] = k.split('/').map(Number);
      cells.push({ variant: v.label, layer, expert, share: a.sum / a.n });
    }
    const p = log.points[log.points.length - 1];
    if (p) {
      metrics.push({ variant: v.label, metric: 'val PPL', value: p.entry.valPpl });
      metrics.push({ variant: v.label, metric: 'routing entropy', value: p.entry.routingEntropy });
    }
  }
  const color = { field: 'variant', type: 'nominal', scale: colorScale(vs), legend: null } as const;
  return {
    ...base,
    vconcat: [
      {
        title: 'Mean load share per layer and expert, by variant',
        data: { values: cells },
        facet: { column: { field: 'variant', type: 'nominal', title: null, sort: vs.map((v) => v.label) } },
        spec: {
          width: 150,
          height: 110,
          mark: 'rect',
          encoding: {
            x: { field: 'expert', type: 'ordinal' },
            y: { field: 'layer', type: 'ordinal' },
            color: { field: 'share', type: 'quantitative', scale: { scheme: 'blues' } },
            tooltip: [{ field: 'variant' }, { field: 'layer' }, { field: 'expert' }, { field: 'share', format: '.3f' }],
          },
        },
      },
      {
        title: 'Latest log point, by variant',
        data: { values: metrics },
        facet: { column: { field: 'metric', type: 'nominal', title: null } },
        spec: {
          width: 260,
          height: 120,
          mark: 'bar',
          encoding: {
            y: { field: 'variant', type: 'nominal', sort: vs.map((v) => v.label), title: null },
            x: { field: 'value', type: 'quantitative' },
            color,
            tooltip: [{ field: 'variant' }, { field: 'metric' }, { field: 'value', format: '.4f' }],
          },
        },
        resolve: { scale: { x: 'independent' } },
      },
    ],
  } as TopLevelSpec;
}
