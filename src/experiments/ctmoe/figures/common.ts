// Shared pieces of the CT-MoE figures: the finished variants in run order, the variant colour
// scale (the seed's palette), reference rules with a label, number formatting, moving average.
import type { ChartSpec } from '../../../report/charts.js';
import type { CtMoeAblationResults } from '../ablation.js';
import type { CtMoeVariantResult } from '../train.js';

/** One Vega-Lite unit or layer spec (the pieces the figures compose; loosely typed on purpose). */
export type Spec = Record<string, unknown>;

/** A finished variant, in the run's order. */
export interface DoneVariant {
  key: string;
  label: string;
  color: string;
  r: CtMoeVariantResult;
}

/** Variants with a result, in `results.order`. */
export function doneVariants(results: CtMoeAblationResults): DoneVariant[] {
  const out: DoneVariant[] = [];
  for (const key of results.order) {
    const v = results.variants[key];
    if (v && v.status === 'done' && v.result) out.push({ key, label: v.label, color: v.color, r: v.result });
  }
  return out;
}

/** Finished variants that have S (everything but Standard MoE). */
export function variantsWithS(results: CtMoeAblationResults): DoneVariant[] {
  return doneVariants(results).filter((v) => v.r.finalS !== null);
}

/** Labels of finished variants without S, for captions ("Standard MoE has no S: not shown"). */
export function noSNote(results: CtMoeAblationResults): string | null {
  const without = doneVariants(results).filter((v) => v.r.finalS === null);
  if (without.length === 0) return null;
  return `${without.map((v) => v.label).join(', ')} ${without.length === 1 ? 'has' : 'have'} no S: not shown`;
}

/** The colour encoding of a `variant` field: the variants' labels mapped to their colours, in run order. */
export function variantColor(vs: readonly DoneVariant[], legend: Spec | null = { title: 'Variant', orient: 'bottom', columns: 2 }): Spec {
  return {
    field: 'variant',
    type: 'nominal',
    sort: vs.map((v) => v.label),
    scale: { domain: vs.map((v) => v.label), range: vs.map((v) => v.color) },
    legend,
  };
}

/** A dashed horizontal reference line at `value`, labelled at the right (or left) end of a plot `widthPx` wide. */
export function refRule(value: number, label: string, widthPx: number, at: 'right' | 'left' = 'right'): Spec[] {
  return [
    {
      data: { values: [{}] },
      mark: { type: 'rule', strokeDash: [5, 4], color: '#444441', strokeWidth: 1.2 },
      encoding: { y: { datum: value } },
    },
    {
      data: { values: [{}] },
      mark: { type: 'text', align: at, baseline: 'bottom', dy: -2, dx: at === 'left' ? 4 : 0, fontSize: 10, color: '#444441' },
      encoding: { x: { value: at === 'left' ? 0 : widthPx }, y: { datum: value }, text: { value: label } },
    },
  ];
}

/** Fixed-point with `d` decimals. */
export const fmt = (v: number, d = 2): string => v.toFixed(d);

/**
 * Trailing moving average with window w ("valid" mode: the first point is the mean of the first w
 * values, as numpy's convolve(x, ones(w)/w, 'valid')); with fewer than w values, one point, the mean
 * of all. Returns the averages and the 1-based index (step) of each window's last value.
 */
export function movingAverage(values: readonly number[], w: number): { step: number; value: number }[] {
  if (!Number.isInteger(w) || w < 1) throw new RangeError(`movingAverage: w must be an integer >= 1, got ${w}`);
  const n = values.length;
  if (n === 0) return [];
  const win = Math.min(w, n);
  const out: { step: number; value: number }[] = [];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    sum += values[i]!;
    if (i >= win) sum -= values[i - win]!;
    if (i >= win - 1) out.push({ step: i + 1, value: sum / win });
  }
  return out;
}

/** Every k-th point (and the last) so that at most `max` remain; long runs stay light in SVG. */
export function thin<T>(points: readonly T[], max = 1500): T[] {
  if (points.length <= max) return [...points];
  const k = Math.ceil(points.length / max);
  const out = points.filter((_, i) => i % k === 0);
  if ((points.length - 1) % k !== 0) out.push(points[points.length - 1]!);
  return out;
}

/** Layer indices shown in fig4: {0, floor(n/2), n-1}, deduplicated (the seed's). */
export function heatmapLayers(nLayer: number): number[] {
  return [...new Set([0, Math.floor(nLayer / 2), nLayer - 1])].sort((a, b) => a - b);
}

/** Spread label positions (data units) so that neighbours are at least `gap` apart, keeping their order. */
export function spreadLabels(ys: readonly number[], gap: number): number[] {
  const idx = ys.map((y, i) => ({ y, i })).sort((a, b) => a.y - b.y);
  const placed = idx.map((p) => p.y);
  for (let k = 1; k < placed.length; k++) if (placed[k]! - placed[k - 1]! < gap) placed[k] = placed[k - 1]! + gap;
  // centre the shift so labels do not all drift upwards
  const shift = (placed.reduce((s, v) => s + v, 0) - idx.reduce((s, p) => s + p.y, 0)) / Math.max(placed.length, 1);
  const out = new Array<number>(ys.length);
  idx.forEach((p, k) => (out[p.i] = placed[k]! - shift));
  return out;
}

/** Top-level wrapper: title (+ subtitle lines), shared config. */
export function top(title: string, subtitle: string[] | string | null, body: Spec): ChartSpec {
  const sub = subtitle === null ? undefined : Array.isArray(subtitle) ? subtitle : [subtitle];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle: sub, anchor: 'start', fontSize: 15, subtitleFontSize: 11, subtitleColor: '#555', offset: 10 },
    padding: 12,
    background: 'white',
    ...body,
    config: {
      axis: { titleFontSize: 12, labelFontSize: 10, titleFontWeight: 'normal' },
      legend: { titleFontSize: 11, labelFontSize: 11, labelLimit: 260 },
      ...(body['config'] as Spec | undefined),
    },
  } as ChartSpec;
}
