// The ablation table (fig11 and the report's HTML table): one row per variant with parameters,
// final PPL per domain, final routing entropy, S entropy, S max and the variant's two switches;
// the lowest PPL of each domain column is marked best (green bold). With several seeds every
// number is the mean over the variant's finished seeds, and each PPL carries its 95% interval
// (mean ± half-width, Student t over seeds).
import type { ChartSpec } from '../../../report/charts.js';
import { type CtMoeAblationResults, finishedRuns, resultSeeds } from '../ablation.js';
import type { CtMoeLogEntry } from '../train.js';
import { type MeanInterval, type PplDomain, domainIntervals } from '../stats.js';
import { doneVariants, top } from './common.js';

export interface AblationRow {
  key: string;
  label: string;
  status: 'done' | 'pending';
  paramsM: number | null;
  /** Mean final PPL over the finished seeds (the single run's PPL with one seed). */
  ppl: { code: number; prose: number; mixed: number } | null;
  /** Per domain: mean and 95% interval over the finished seeds (no interval under 2 seeds). */
  pplInterval: Record<PplDomain, MeanInterval> | null;
  /** Finished seeds of this variant. */
  seeds: number;
  routingEntropy: number | null;
  sEntropy: number | null;
  sMax: number | null;
  route: boolean;
  collab: boolean;
}

export interface AblationTable {
  rows: AblationRow[];
  /** Key of the variant with the lowest PPL per domain (null: no finished variant). */
  best: { code: string | null; prose: string | null; mixed: string | null };
}

export const TABLE_COLUMNS = [
  'Params (M)',
  'Code PPL',
  'Prose PPL',
  'Mixed PPL',
  'Routing Ent',
  'S Entropy',
  'S Max',
  'Route',
  'Collab',
] as const;
export type TableColumn = (typeof TABLE_COLUMNS)[number];

/** Rows in run order (pending variants included, with no numbers). */
export function ablationTable(results: CtMoeAblationResults): AblationTable {
  const rows: AblationRow[] = results.order.map((key) => {
    const v = results.variants[key]!;
    const runs = finishedRuns(results, key);
    const r = runs[0]?.result ?? null;
    const flags = r?.flags;
    const iv = domainIntervals(runs);
    // mean over the finished seeds of a last-logged value (null when no run logged it)
    const lastMean = (pick: (l: CtMoeLogEntry) => number | null): number | null => {
      const xs = runs.map((x) => x.result.logs.at(-1)).map((l) => (l ? pick(l) : null));
      return xs.length > 0 && xs.every((x) => x !== null) ? (xs as number[]).reduce((a, b) => a + b, 0) / xs.length : null;
    };
    return {
      key,
      label: v.label,
      status: r ? 'done' : 'pending',
      paramsM: r ? r.nParams / 1e6 : null,
      ppl: iv ? { code: iv.code.mean, prose: iv.prose.mean, mixed: iv.mixed.mean } : null,
      pplInterval: iv,
      seeds: runs.length,
      routingEntropy: lastMean((l) => l.routingEntropy),
      sEntropy: lastMean((l) => l.sEntropy),
      sMax: lastMean((l) => l.sMax),
      route: flags ? flags.useTopology && flags.useGraphRouting : false,
      collab: flags ? flags.useTopology && flags.useGraphCollab : false,
    };
  });
  const bestOf = (d: 'code' | 'prose' | 'mixed') => {
    let best: AblationRow | null = null;
    for (const row of rows) if (row.ppl && (!best || row.ppl[d] < best.ppl![d])) best = row;
    return best?.key ?? null;
  };
  return { rows, best: { code: bestOf('code'), prose: bestOf('prose'), mixed: bestOf('mixed') } };
}

const DASH = '—';
const f = (v: number | null, d: number) => (v === null ? DASH : v.toFixed(d));
/** A PPL cell: the value, or mean ± half-width of its 95% interval with >= 2 seeds. */
const pplText = (iv: MeanInterval | undefined) =>
  !iv ? DASH : iv.halfWidth === null ? iv.mean.toFixed(2) : `${iv.mean.toFixed(2)} ± ${iv.halfWidth.toFixed(2)}`;

/** The table's cells as text, with which are best; used by fig11, the report and the CLI. */
export function tableCells(
  results: CtMoeAblationResults,
): { label: string; key: string; cells: { column: TableColumn; text: string; best: boolean }[] }[] {
  const t = ablationTable(results);
  return t.rows.map((r) => {
    const paramsDigits = r.paramsM !== null && r.paramsM < 10 ? 3 : 1;
    const pend = r.status === 'pending';
    const cells: { column: TableColumn; text: string; best: boolean }[] = [
      { column: 'Params (M)', text: pend ? 'pending' : f(r.paramsM, paramsDigits), best: false },
      { column: 'Code PPL', text: pplText(r.pplInterval?.code), best: t.best.code === r.key },
      { column: 'Prose PPL', text: pplText(r.pplInterval?.prose), best: t.best.prose === r.key },
      { column: 'Mixed PPL', text: pplText(r.pplInterval?.mixed), best: t.best.mixed === r.key },
      { column: 'Routing Ent', text: f(r.routingEntropy, 3), best: false },
      { column: 'S Entropy', text: f(r.sEntropy, 3), best: false },
      { column: 'S Max', text: f(r.sMax, 3), best: false },
      { column: 'Route', text: pend ? DASH : r.route ? '✓' : '✗', best: false },
      { column: 'Collab', text: pend ? DASH : r.collab ? '✓' : '✗', best: false },
    ];
    return { label: r.label, key: r.key, cells };
  });
}

export const BEST_COLOR = '#0F7B3F';

/** fig11: the ablation table drawn as a figure (best PPL per column in green bold). */
export function fig11AblationTable(results: CtMoeAblationResults): ChartSpec {
  const rows = tableCells(results);
  const values = rows.flatMap((r) => r.cells.map((c) => ({ model: r.label, column: c.column, text: c.text, best: c.best })));
  const N = results.config.numExperts;
  const done = doneVariants(results).length;
  return top(
    'CT-MoE ablation summary',
    [
      `preset ${results.preset}: ${results.config.nLayer} layers, d_model ${results.config.dModel}, N = ${N} experts, top-${results.config.topK}; ${done} of ${results.order.length} variants finished; ${seedsLine(results)}`,
      'PPL: final validation perplexity per domain (prose = arXiv in the paper); entropies and S max: last logged values, mean over layers',
      'green bold: lowest PPL in its column; Route: S column sums bias the router; Collab: message passing over the selected experts',
    ],
    {
      width: { step: resultSeeds(results).length > 1 ? 120 : 92 },
      height: { step: 30 },
      data: { values },
      config: { view: { stroke: null } },
      encoding: {
        x: {
          field: 'column',
          type: 'ordinal',
          sort: [...TABLE_COLUMNS],
          title: null,
          axis: { orient: 'top', labelAngle: 0, labelFontWeight: 'bold', labelFontSize: 11, domain: false, ticks: false, labelPadding: 8 },
        },
        y: {
          field: 'model',
          type: 'ordinal',
          sort: rows.map((r) => r.label),
          title: 'Model',
          axis: { labelFontSize: 12, domain: false, ticks: false, labelPadding: 10, labelLimit: 300, titleFontWeight: 'bold' },
        },
      },
      layer: [
        { mark: { type: 'rect', color: '#E3F1E8' }, transform: [{ filter: 'datum.best' }] },
        {
          mark: { type: 'text', fontSize: 12, color: '#222222' },
          transform: [{ filter: '!datum.best' }],
          encoding: { text: { field: 'text' } },
        },
        {
          mark: { type: 'text', fontSize: 12, color: BEST_COLOR, fontWeight: 'bold' },
          transform: [{ filter: 'datum.best' }],
          encoding: { text: { field: 'text' } },
        },
      ],
    },
  );
}

/** What the numbers are over: one seed, or the mean and 95% interval over n seeds. */
export function seedsLine(results: CtMoeAblationResults): string {
  const seeds = resultSeeds(results);
  return seeds.length === 1
    ? `single seed ${seeds[0]}`
    : `${seeds.length} seeds (${seeds.join(', ')}): PPL = mean ± 95% interval half-width (Student t over seeds), other columns means`;
}
