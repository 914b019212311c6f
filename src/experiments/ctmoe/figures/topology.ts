// The learned topology S: fig4 heatmaps per variant (layers 0, n/2, n-1), fig9 eigenspectrum of
// the final layer's S, fig10 final-layer S of every variant side by side on one colour scale.
//
// fig4's "contour at 1/(N-1)": S lives on an N x N grid of discrete cells, so instead of an
// interpolated contour line (matplotlib's contour on the cell centres) the cells whose value is
// above the uniform level 1/(N-1) are outlined in black. The outlined set is exactly the region a
// contour at that level encloses, without interpolation between cell centres.
import type { ChartSpec } from '../../../report/charts.js';
import type { CtMoeAblationResults } from '../ablation.js';
import { type DoneVariant, type Spec, fmt, heatmapLayers, noSNote, refRule, top, variantColor, variantsWithS } from './common.js';

export interface SCell {
  i: number;
  j: number;
  s: number;
  /** S_ij > 1/(N-1) (fig4 outlines these). */
  above: boolean;
}

/** The cells of one S matrix (row i, column j). */
export function sCells(S: readonly (readonly number[])[], threshold: number): SCell[] {
  return S.flatMap((row, i) => row.map((s, j) => ({ i, j, s, above: s > threshold })));
}

const cellPx = (N: number) => Math.max(12, Math.min(30, Math.floor(260 / N)));

/** One heatmap panel: cells coloured by S on [0, vmax]; `outline`: cells drawn with a black border on top. */
function heatmap(title: string, cells: SCell[], N: number, vmax: number, outline: SCell[] | null, legendTitle: string): Spec {
  const px = cellPx(N);
  const ticks = N <= 16 ? undefined : Array.from({ length: Math.ceil(N / 4) }, (_, k) => k * 4);
  const axis = (title: string) => ({ title, labelAngle: 0, ...(ticks ? { values: ticks } : {}) });
  const base: Spec = {
    data: { values: cells },
    mark: { type: 'rect' },
    encoding: {
      x: { field: 'j', type: 'ordinal', title: 'expert j', axis: axis('expert j (partner)'), scale: { domain: [...Array(N).keys()] } },
      y: { field: 'i', type: 'ordinal', title: 'expert i', axis: axis('expert i'), scale: { domain: [...Array(N).keys()] } },
      color: {
        field: 's',
        type: 'quantitative',
        title: legendTitle,
        scale: { scheme: 'yelloworangered', domain: [0, vmax], clamp: true },
        legend: { orient: 'right', gradientLength: Math.max(120, px * N - 20), format: '.2f' },
      },
      tooltip: [{ field: 'i' }, { field: 'j' }, { field: 's', format: '.4f' }],
    },
  };
  const layers: Spec[] = [base];
  if (outline) {
    layers.push({
      data: { values: outline },
      mark: { type: 'rect', filled: false, stroke: '#000000', strokeWidth: 1.6 },
      encoding: { x: { field: 'j', type: 'ordinal' }, y: { field: 'i', type: 'ordinal' } },
    });
  }
  return { title, width: px * N, height: px * N, layer: layers };
}

/** fig4 for one variant: S of layers {0, n/2, n-1}, cells above 1/(N-1) outlined. Null when the variant has no S. */
export function fig4SHeatmaps(results: CtMoeAblationResults, key: string): ChartSpec | null {
  const v = variantsWithS(results).find((x) => x.key === key);
  if (!v?.r.finalS) return null;
  const S = v.r.finalS;
  const N = results.config.numExperts;
  const thr = results.reference.sMaxUniform;
  const layers = heatmapLayers(S.length);
  const vmax = Math.max(thr, ...layers.flatMap((l) => S[l]!.flat()));
  return top(
    `Learned S — ${v.label}`,
    [
      `final S per layer (row-stochastic, zero diagonal); colour scale shared by the panels, 0 to ${fmt(vmax, 3)}`,
      `black outline: S_ij > 1/(N-1) = ${fmt(thr, 3)}, the uniform level (the seed's contour, drawn as cell outlines)`,
    ],
    {
      hconcat: layers.map((l) => {
        const cells = sCells(S[l]!, thr);
        return heatmap(
          `layer ${l}${l === S.length - 1 ? ' (last)' : ''}`,
          cells,
          N,
          vmax,
          cells.filter((c) => c.above),
          'S_ij',
        );
      }),
      resolve: { scale: { color: 'shared' } },
    },
  );
}

/** fig9: eigenspectrum of the final layer's S (eigenvalues sorted descending, |λ| normalised to sum 1), reference 1/N. */
export function fig9Eigenspectrum(results: CtMoeAblationResults): ChartSpec {
  const vs = variantsWithS(results).filter((v) => v.r.eigenspectrum !== null);
  const N = results.config.numExperts;
  const values = vs.flatMap((v) =>
    v.r.eigenspectrum!.normalizedAbs.map((a, k) => ({
      variant: v.label,
      rank: k + 1,
      value: a,
      lambda: v.r.eigenspectrum!.eigenvalues[k],
    })),
  );
  const ref = results.reference.eigUniform;
  const note = noSNote(results);
  return top(
    'Eigenspectrum of the final layer’s S',
    [
      `eigenvalues λ_1 ≥ … ≥ λ_N of the last layer's S (eigvalsh semantics), plotted as |λ_k| / Σ|λ|`,
      `dashed: flat spectrum 1/N = ${fmt(ref, 3)}`,
      ...(note ? [note] : []),
    ],
    {
      width: 520,
      height: 270,
      layer: [
        {
          data: { values },
          mark: { type: 'line', strokeWidth: 2, point: { size: 40, filled: true } },
          encoding: {
            x: {
              field: 'rank',
              type: 'quantitative',
              title: 'eigenvalue index k (λ sorted descending)',
              scale: { domain: [1, N], nice: false },
              axis: { tickMinStep: 1, format: 'd' },
            },
            y: { field: 'value', type: 'quantitative', title: 'normalised |λ_k|', scale: { zero: true } },
            color: variantColor(vs),
            tooltip: [{ field: 'variant' }, { field: 'rank' }, { field: 'lambda', format: '.4f' }, { field: 'value', format: '.4f' }],
          },
        },
        ...refRule(ref, `1/N = ${fmt(ref, 3)}`, 520, 'left'),
      ],
    },
  );
}

/** fig10: the final layer's S of every variant that has one, side by side, one colour scale (shared vmax). */
export function fig10SComparison(results: CtMoeAblationResults): ChartSpec {
  const vs: DoneVariant[] = variantsWithS(results);
  const N = results.config.numExperts;
  const finals = vs.map((v) => v.r.finalS![v.r.finalS!.length - 1]!);
  const vmax = Math.max(results.reference.sMaxUniform, ...finals.flatMap((S) => S.flat()));
  const note = noSNote(results);
  const lastLayer = results.config.nLayer - 1;
  return top(
    `Final-layer S (layer ${lastLayer}) across variants`,
    [`one colour scale for all panels, 0 to ${fmt(vmax, 3)} (shared vmax)`, ...(note ? [note] : [])],
    {
      hconcat: vs.map((v, k) => heatmap(v.label, sCells(finals[k]!, results.reference.sMaxUniform), N, vmax, null, 'S_ij')),
      resolve: { scale: { color: 'shared' } },
    },
  );
}
