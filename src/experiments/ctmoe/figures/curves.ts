// Training curves: fig1 validation PPL, fig2 training loss, fig3 routing entropy, fig5 S entropy,
// fig6 S max (all from the logged points, fig2 from the per-step losses).
import type { ChartSpec } from '../../../report/charts.js';
import type { CtMoeAblationResults } from '../ablation.js';
import {
  type DoneVariant,
  type Spec,
  doneVariants,
  fmt,
  movingAverage,
  noSNote,
  refRule,
  spreadLabels,
  thin,
  top,
  variantColor,
  variantsWithS,
} from './common.js';

const W = 440;
const H = 270;

/** Fraction of the run after which fig1's right panel zooms in. */
export const FIG1_ZOOM_FROM = 0.4;
/** fig2's moving-average window (the seed's). */
export const FIG2_WINDOW = 7;

const maxStep = (vs: readonly DoneVariant[]) => Math.max(1, ...vs.map((v) => v.r.steps));

function logSeries(vs: readonly DoneVariant[], pick: (l: DoneVariant['r']['logs'][number]) => number | null) {
  return vs.flatMap((v) =>
    v.r.logs.flatMap((l) => {
      const y = pick(l);
      return y === null || !Number.isFinite(y) ? [] : [{ variant: v.label, step: l.step, value: y }];
    }),
  );
}

function lineLayer(
  vs: readonly DoneVariant[],
  values: readonly { variant: string }[],
  yTitle: string,
  yScale: Spec = { zero: false },
  xScale: Spec = {},
): Spec {
  return {
    data: { values },
    mark: {
      type: 'line',
      strokeWidth: values.length > 400 * Math.max(vs.length, 1) ? 1.3 : 2,
      point: values.length <= 40 * Math.max(vs.length, 1) ? { size: 22, filled: true } : false,
      clip: true,
    },
    encoding: {
      x: {
        field: 'step',
        type: 'quantitative',
        title: 'training step',
        scale: { nice: false, ...xScale },
        axis: { tickMinStep: 1, format: 'd', tickCount: 8 },
      },
      y: { field: 'value', type: 'quantitative', title: yTitle, scale: yScale },
      color: variantColor(vs),
    },
  };
}

/** fig1: validation PPL (mixed) — semilogy over the whole run + zoomed linear view of the late run with the final values. */
export function fig1ValPpl(results: CtMoeAblationResults): ChartSpec {
  const vs = doneVariants(results);
  const values = logSeries(vs, (l) => l.valPpl);
  const last = maxStep(vs);
  const from = Math.floor(last * FIG1_ZOOM_FROM);
  const late = values.filter((p) => p.step >= from);
  const lateY = late.map((p) => p.value);
  const lo = lateY.length ? Math.min(...lateY) : 1;
  const hi = lateY.length ? Math.max(...lateY) : 2;
  const pad = Math.max((hi - lo) * 0.08, hi * 0.005);
  const finals = vs
    .map((v) => ({ variant: v.label, step: v.r.logs.at(-1)?.step ?? 0, value: v.r.logs.at(-1)?.valPpl ?? NaN }))
    .filter((f) => Number.isFinite(f.value));
  const labelY = spreadLabels(
    finals.map((f) => f.value),
    (hi - lo + 2 * pad) * 0.075,
  );
  const colorOf = new Map(vs.map((v) => [v.label, v.color]));
  const annotations = finals.map((f, i) => ({ ...f, labelY: labelY[i]!, text: fmt(f.value, 1), hex: colorOf.get(f.variant) }));
  const yLo = Math.min(lo - pad, ...labelY.map((y) => y - pad / 2));
  const yHi = Math.max(hi + pad, ...labelY.map((y) => y + pad / 2));
  const zoomLine = lineLayer(vs, late, 'validation PPL', { zero: false, domain: [yLo, yHi], nice: false }, { domain: [from, last] });
  const zoomEnc = zoomLine['encoding'] as { x: Spec; y: Spec };
  return top(
    'Validation perplexity (mixed code + prose)',
    [`left: log scale, whole run; right: linear, from step ${from}, final values annotated`],
    {
      hconcat: [
        { width: W, height: H, title: 'log scale', ...lineLayer(vs, values, 'validation PPL (log)', { type: 'log' }) },
        {
          width: W,
          height: H,
          title: `zoom: steps ${from}–${last}`,
          layer: [
            zoomLine,
            {
              data: { values: annotations },
              mark: { type: 'text', align: 'left', dx: 8, fontSize: 11, fontWeight: 'bold' },
              encoding: {
                x: zoomEnc.x,
                y: { ...zoomEnc.y, field: 'labelY' },
                text: { field: 'text' },
                color: { field: 'hex', type: 'nominal', scale: null },
              },
            },
          ],
        },
      ],
      resolve: { scale: { color: 'shared' } },
    },
  );
}

/** The fig2 series: per variant, the trailing moving average (w = FIG2_WINDOW) of the per-step training loss. */
export function fig2Series(results: CtMoeAblationResults): { variant: string; step: number; value: number }[] {
  return doneVariants(results).flatMap((v) => thin(movingAverage(v.r.trainLoss, FIG2_WINDOW)).map((p) => ({ variant: v.label, ...p })));
}

/** fig2: training loss (CE + scaled load-balancing loss), moving average over 7 steps. */
export function fig2TrainLoss(results: CtMoeAblationResults): ChartSpec {
  const vs = doneVariants(results);
  return top('Training loss', [`total loss (CE + load-balancing term) per step, trailing moving average over ${FIG2_WINDOW} steps`], {
    width: W + 120,
    height: H,
    ...lineLayer(vs, fig2Series(results), `training loss (MA ${FIG2_WINDOW})`),
  });
}

/** fig3: routing entropy of the expert usage between log points (mean over layers), reference log N. */
export function fig3RoutingEntropy(results: CtMoeAblationResults): ChartSpec {
  const vs = doneVariants(results);
  const N = results.config.numExperts;
  const values = logSeries(vs, (l) => l.routingEntropy);
  const ref = results.reference.routingEntropyUniform;
  const ys = [...values.map((p) => p.value), ref];
  const lo = Math.min(...ys);
  const hi = Math.max(...ys);
  const pad = Math.max((hi - lo) * 0.1, 1e-3);
  return top(
    'Routing entropy',
    [
      'entropy of the top-k expert usage since the previous log point, mean over layers',
      `dashed: uniform usage, log N = ${fmt(ref, 3)} (N = ${N} experts)`,
    ],
    {
      width: W + 120,
      height: H,
      layer: [
        lineLayer(vs, values, 'routing entropy (nats)', { zero: false, domain: [lo - pad, hi + pad], nice: false }),
        ...refRule(ref, `uniform: log ${N} = ${fmt(ref, 3)}`, W + 120),
      ],
    },
  );
}

function sCurve(
  results: CtMoeAblationResults,
  which: 'sEntropy' | 'sMax',
  title: string,
  yTitle: string,
  ref: number,
  refLabel: string,
  what: string,
): ChartSpec {
  const vs = variantsWithS(results);
  const values = logSeries(vs, (l) => l[which]);
  const ys = [...values.map((p) => p.value), ref];
  const lo = Math.min(...ys);
  const hi = Math.max(...ys);
  const pad = Math.max((hi - lo) * 0.08, 1e-3);
  const note = noSNote(results);
  return top(title, [...what.split('|'), ...(note ? [note] : [])], {
    width: W + 120,
    height: H,
    layer: [lineLayer(vs, values, yTitle, { zero: false, domain: [lo - pad, hi + pad], nice: false }), ...refRule(ref, refLabel, W + 120)],
  });
}

/** fig5: S row entropy (mean over rows and layers), reference log(N-1) (S uniform off the diagonal). */
export function fig5SEntropy(results: CtMoeAblationResults): ChartSpec {
  const N = results.config.numExperts;
  const ref = results.reference.sEntropyUniform;
  return sCurve(
    results,
    'sEntropy',
    'Entropy of S',
    'S row entropy (nats)',
    ref,
    `uniform S: log(N-1) = ${fmt(ref, 3)}`,
    `mean over rows i of −Σ_j S_ij log S_ij, mean over layers; lower = more concentrated|dashed: S uniform off the diagonal (N = ${N} experts)`,
  );
}

/** fig6: largest off-diagonal S entry (mean over layers), reference 1/(N-1). */
export function fig6SMax(results: CtMoeAblationResults): ChartSpec {
  const N = results.config.numExperts;
  const ref = results.reference.sMaxUniform;
  return sCurve(
    results,
    'sMax',
    'Peak collaboration weight: max S',
    'max off-diagonal S_ij',
    ref,
    `uniform S: 1/(N-1) = ${fmt(ref, 3)}`,
    `largest off-diagonal entry of S, mean over layers|dashed: S uniform off the diagonal (N = ${N} experts)`,
  );
}
