// Bar charts: fig7 final PPL per domain (grouped by domain, one bar per variant; with several
// seeds the bar is the mean and a black rule the 95% interval over seeds), fig8 expert
// specialisation of CT-MoE (Full) and its routing frequencies on code vs prose.
import type { ChartSpec } from '../../../report/charts.js';
import { type CtMoeAblationResults, finishedRuns, resultSeeds } from '../ablation.js';
import { domainIntervals } from '../stats.js';
import { type DoneVariant, doneVariants, fmt, refRule, top, variantColor } from './common.js';

export const DOMAINS = [
  { key: 'code', label: 'code' },
  { key: 'prose', label: 'prose' },
  { key: 'mixed', label: 'mixed' },
] as const;

/** fig7: final validation PPL per domain, grouped bars (one per variant), values on the bars. */
export function fig7DomainPpl(results: CtMoeAblationResults): ChartSpec {
  const vs = doneVariants(results);
  const intervals = vs.map((v) => domainIntervals(finishedRuns(results, v.key))!);
  const values = DOMAINS.flatMap((d) =>
    vs.map((v, i) => {
      const iv = intervals[i]![d.key];
      return {
        domain: d.label,
        variant: v.label,
        ppl: iv.mean,
        lo: iv.lo ?? iv.mean,
        hi: iv.hi ?? iv.mean,
        text: fmt(iv.mean, 1),
        top: iv.hi ?? iv.mean,
      };
    }),
  );
  const seeds = resultSeeds(results);
  const multi = seeds.length > 1;
  const step = Math.max(multi ? 30 : 22, Math.min(multi ? 52 : 40, Math.floor(150 / Math.max(vs.length, 1))));
  const enc = {
    x: { field: 'domain', type: 'nominal', title: 'validation domain', sort: DOMAINS.map((d) => d.label), axis: { labelAngle: 0 } },
    xOffset: { field: 'variant', type: 'nominal', sort: vs.map((v) => v.label) },
    y: { field: 'ppl', type: 'quantitative', title: multi ? 'perplexity (final, mean over seeds)' : 'perplexity (final)' },
  };
  const n = results.config.evalBatches;
  const seedLine = multi
    ? `bar: mean over ${seeds.length} seeds (${seeds.join(', ')}); black rule: 95% interval of the mean (Student t over seeds)`
    : `single seed ${seeds[0]}: no interval (run with --seeds >= 2 for one)`;
  return top(
    'Final perplexity per domain',
    [
      `after training, on the first ${n} validation batches of each domain; lower is better`,
      seedLine,
      'prose: State of the Union addresses here, arXiv summaries in the paper',
    ],
    {
      width: DOMAINS.length * (step * Math.max(vs.length, 1) + 30),
      height: 300,
      data: { values },
      encoding: enc,
      layer: [
        { mark: { type: 'bar' }, encoding: { color: variantColor(vs) } },
        ...(multi
          ? [
              {
                mark: { type: 'rule', color: '#222222', strokeWidth: 1.5 },
                encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
              },
            ]
          : []),
        {
          mark: { type: 'text', baseline: 'bottom', dy: -3, fontSize: vs.length > 4 || multi ? 8 : 10 },
          encoding: { y: { field: 'top', type: 'quantitative' }, text: { field: 'text' } },
        },
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
