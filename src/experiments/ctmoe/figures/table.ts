// The ablation table (fig11 and the report's HTML table): one row per variant with parameters,
// final PPL per domain, final routing entropy, S entropy, S max and the variant's two switches;
// the lowest PPL of each domain column is marked best (green bold).
import type { ChartSpec } from '../../../report/charts.js';
import type { CtMoeAblationResults } from '../ablation.js';
import { doneVariants, top } from './common.js';

export interface AblationRow {
  key: string;
  label: string;
  status: 'done' | 'pending';
  paramsM: number | null;
  ppl: { code: number; prose: number; mixed: number } | null;
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
    const r = v.status === 'done' ? v.result : null;
    const last = r?.logs.at(-1) ?? null;
    const flags = r?.flags;
    return {
      key,
      label: v.label,
      status: r ? 'done' : 'pending',
      paramsM: r ? r.nParams / 1e6 : null,
      ppl: r ? { ...r.domainPpl } : null,
      routingEntropy: last ? last.routingEntropy : null,
      sEntropy: last?.sEntropy ?? null,
      sMax: last?.sMax ?? null,
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
      { column: 'Code PPL', text: f(r.ppl?.code ?? null, 2), best: t.best.code === r.key },
      { column: 'Prose PPL', text: f(r.ppl?.prose ?? null, 2), best: t.best.prose === r.key },
      { column: 'Mixed PPL', text: f(r.ppl?.mixed ?? null, 2), best: t.best.mixed === r.key },
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
      `preset ${results.preset}: ${results.config.nLayer} layers, d_model ${results.config.dModel}, N = ${N} experts, top-${results.config.topK}; ${done} of ${results.order.length} variants finished`,
      'PPL: final validation perplexity per domain (prose = arXiv in the paper); entropies and S max: last logged values, mean over layers',
      'green bold: lowest PPL in its column; Route: S column sums bias the router; Collab: message passing over the selected experts',
    ],
    {
      width: { step: 92 },
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
