// Bar charts: fig7 final PPL per domain (grouped by domain, one bar per variant), fig8 expert
// specialisation of CT-MoE (Full) and its routing frequencies on code vs prose.
import type { ChartSpec } from '../../../report/charts.js';
import type { CtMoeAblationResults } from '../ablation.js';
import { type DoneVariant, doneVariants, fmt, refRule, top, variantColor } from './common.js';

export const DOMAINS = [
  { key: 'code', label: 'code' },
  { key: 'prose', label: 'prose' },
  { key: 'mixed', label: 'mixed' },
] as const;

/** fig7: final validation PPL per domain, grouped bars (one per variant), values on the bars. */
export function fig7DomainPpl(results: CtMoeAblationResults): ChartSpec {
  const vs = doneVariants(results);
  const values = DOMAINS.flatMap((d) =>
    vs.map((v) => ({ domain: d.label, variant: v.label, ppl: v.r.domainPpl[d.key], text: fmt(v.r.domainPpl[d.key], 1) })),
  );
  const step = Math.max(22, Math.min(40, Math.floor(150 / Math.max(vs.length, 1))));
  const enc = {
    x: { field: 'domain', type: 'nominal', title: 'validation domain', sort: DOMAINS.map((d) => d.label), axis: { labelAngle: 0 } },
    xOffset: { field: 'variant', type: 'nominal', sort: vs.map((v) => v.label) },
    y: { field: 'ppl', type: 'quantitative', title: 'perplexity (final)' },
  };
  const n = results.config.evalBatches;
  return top(
    'Final perplexity per domain',
    [
      `after training, on the first ${n} validation batches of each domain; lower is better`,
      'prose: State of the Union addresses here, arXiv summaries in the paper',
    ],
    {
      width: DOMAINS.length * (step * Math.max(vs.length, 1) + 30),
      height: 300,
      data: { values },
      encoding: enc,
      layer: [
        { mark: { type: 'bar' }, encoding: { color: variantColor(vs) } },
        { mark: { type: 'text', baseline: 'bottom', dy: -3, fontSize: vs.length > 4 ? 8 : 10 }, encoding: { text: { field: 'text' } } },
      ],
    },
  );
}

/** The variant fig8 describes: CT-MoE (Full) when it finished, else the first finished variant. */
export function fig8Variant(results: CtMoeAblationResults): DoneVariant | null {
  const vs = doneVariants(results);
  return vs.find((v) => v.key === 'CT-MoE-Full') ?? vs[0] ?? null;
}

/** fig8: per-expert specialisation (f_code - f_prose)/(f_code + f_prose) of CT-MoE (Full), and its grouped routing frequencies. */
export function fig8Specialisation(results: CtMoeAblationResults): ChartSpec {
  const v = fig8Variant(results);
  const N = results.config.numExperts;
  const spec = v ? v.r.specialisation.map((s, e) => ({ expert: e, s, leaning: s >= 0 ? 'code' : 'prose' })) : [];
  const freq = v
    ? v.r.routingFreq.code.flatMap((f, e) => [
        { expert: e, domain: 'code', f },
        { expert: e, domain: 'prose', f: v.r.routingFreq.prose[e]! },
      ])
    : [];
  const domainColor = {
    field: 'domain',
    type: 'nominal',
    title: 'validation domain',
    scale: { domain: ['code', 'prose'], range: ['#534AB7', '#BA7517'] },
    legend: { orient: 'bottom' },
  };
  const w = Math.max(280, N * 34);
  const experts = [...Array(N).keys()];
  const which = v ? (v.key === 'CT-MoE-Full' ? v.label : `${v.label} (CT-MoE (Full) did not finish)`) : 'no finished variant';
  return top(
    `Expert specialisation — ${which}`,
    [
      'left: s_e = (f_code,e − f_prose,e) / (f_code,e + f_prose,e): +1 only code, −1 only prose (prose = arXiv in the paper)',
      `right: routing frequency per expert on each domain (train mode, summed over layers, normalised); dashed: uniform 1/N = ${fmt(1 / N, 3)}`,
    ],
    {
      hconcat: [
        {
          width: w,
          height: 260,
          title: 'specialisation',
          layer: [
            {
              data: { values: spec },
              mark: { type: 'bar' },
              encoding: {
                x: { field: 'expert', type: 'ordinal', title: 'expert', scale: { domain: experts }, axis: { labelAngle: 0 } },
                y: { field: 's', type: 'quantitative', title: 'specialisation s_e', scale: { domain: [-1, 1] } },
                color: {
                  field: 'leaning',
                  type: 'nominal',
                  title: 'leans to',
                  scale: { domain: ['code', 'prose'], range: ['#534AB7', '#BA7517'] },
                  legend: null,
                },
              },
            },
            { mark: { type: 'rule', color: '#444441' }, encoding: { y: { datum: 0 } } },
          ],
        },
        {
          width: w,
          height: 260,
          title: 'routing frequency',
          layer: [
            {
              data: { values: freq },
              mark: { type: 'bar' },
              encoding: {
                x: { field: 'expert', type: 'ordinal', title: 'expert', scale: { domain: experts }, axis: { labelAngle: 0 } },
                xOffset: { field: 'domain', type: 'nominal', sort: ['code', 'prose'] },
                y: { field: 'f', type: 'quantitative', title: 'routing frequency' },
                color: domainColor,
              },
            },
            ...refRule(1 / N, '1/N', w),
          ],
        },
      ],
      resolve: { scale: { color: 'independent' } },
    },
  );
}
