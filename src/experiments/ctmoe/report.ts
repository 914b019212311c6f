// The CT-MoE ablation report: DIR/report.html (one file, atomic write; figures as <img> with
// relative paths to figures/*.png) with the ablation table, every figure, the configuration,
// wall-clock timings and a short reading of the numbers, generated from results.json. Also a
// plain-text table for the terminal.
import { join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import { type CtMoeAblationResults, finishedRuns, resultSeeds } from './ablation.js';
import { type CtMoeExperimentConfig, PRESETS } from './config.js';
import { CONFIDENCE, type MeanInterval, type PairedDifference, PPL_DOMAINS, pairedDifference, verdictOf } from './stats.js';
import { type FigureEntry, FIGURES_DIR, allFigures } from './figures/index.js';
import { BEST_COLOR, TABLE_COLUMNS, ablationTable, doneVariants, seedsLine, tableCells } from './figures/index.js';
import type { DoneVariant } from './figures/index.js';

export const REPORT_HTML = 'report.html';

type Domain = 'code' | 'prose' | 'mixed';
const DOMAIN_NAMES: Record<Domain, string> = { code: 'code', prose: 'prose', mixed: 'mixed' };
/** The paper's table is code / arXiv / mixed; its arXiv column stands against our prose. */
const PAPER_DOMAIN: Record<Domain, 'code' | 'arxiv' | 'mixed'> = { code: 'code', prose: 'arxiv', mixed: 'mixed' };

/** Relative PPL gaps below this are called possible seed noise in the reading (single-seed runs). */
export const NOISE_REL = 0.05;

const pct = (a: number, b: number) => `${a < b ? '−' : '+'}${(Math.abs(a / b - 1) * 100).toFixed(1)}%`;
const f2 = (v: number) => v.toFixed(2);

/** Config fields that differ from the named preset (all of them for a custom preset). */
export function configOverrides(results: CtMoeAblationResults): Partial<CtMoeExperimentConfig> {
  const base = (PRESETS as Record<string, CtMoeExperimentConfig>)[results.preset];
  if (!base) return { ...results.config };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(results.config)) {
    if (JSON.stringify(v) !== JSON.stringify((base as unknown as Record<string, unknown>)[k])) out[k] = v;
  }
  return out as Partial<CtMoeExperimentConfig>;
}

/** A finished variant with its final PPL per domain: the mean over its finished seeds (the run's own with one seed). */
type Scored = DoneVariant & { ppl: Record<Domain, number> };

function scoredVariants(results: CtMoeAblationResults): Scored[] {
  return doneVariants(results).map((v) => {
    const runs = finishedRuns(results, v.key);
    const m = (d: Domain) => runs.reduce((s, r) => s + r.result.domainPpl[d], 0) / runs.length;
    return { ...v, ppl: { code: m('code'), prose: m('prose'), mixed: m('mixed') } };
  });
}

/** Order of the keys by a domain's PPL (finished variants only), lowest first. */
function ranked(results: CtMoeAblationResults, d: Domain) {
  return scoredVariants(results)
    .map((v) => ({ key: v.key, label: v.label, ppl: v.ppl[d] }))
    .sort((a, b) => a.ppl - b.ppl);
}

/**
 * Which variant is subtracted from which: the more of the paper's mechanism first (Full, No
 * Routing, No Collaboration, Standard), so the paper's claims read as negative differences;
 * custom variants after them in run order.
 */
const PAIR_RANK = ['CT-MoE-Full', 'CT-MoE-NoRouting', 'CT-MoE-NoCollab', 'StandardMoE'];

/** The paired differences a − b of every pair of finished variants over their common seeds. */
export function pairedDifferences(results: CtMoeAblationResults): PairedDifference[] {
  const rank = (k: string) => {
    const i = PAIR_RANK.indexOf(k);
    return i >= 0 ? i : PAIR_RANK.length + results.order.indexOf(k);
  };
  const keys = doneVariants(results)
    .map((v) => v.key)
    .sort((a, b) => rank(a) - rank(b));
  const out: PairedDifference[] = [];
  for (let i = 0; i < keys.length; i++)
    for (let j = i + 1; j < keys.length; j++) {
      const d = pairedDifference(keys[i]!, finishedRuns(results, keys[i]!), keys[j]!, finishedRuns(results, keys[j]!));
      if (d) out.push(d);
    }
  return out;
}

const ci = (m: MeanInterval, digits = 2) =>
  m.lo === null
    ? `${signed(m.mean, digits)} (no interval)`
    : `${signed(m.mean, digits)} [${signed(m.lo, digits)}, ${signed(m.hi!, digits)}]`;
const signed = (v: number, digits: number) => `${v < 0 ? '−' : v > 0 ? '+' : ''}${Math.abs(v).toFixed(digits)}`;

/**
 * The seed reading: how many seeds, and for every pair of variants whether its mixed-PPL
 * ordering holds beyond seed noise (the 95% paired-t interval of the difference excludes 0)
 * or not; with one seed, that intervals need at least 2.
 */
export function seedReading(results: CtMoeAblationResults): string[] {
  const label = (k: string) => results.variants[k]?.label ?? k;
  const diffs = pairedDifferences(results);
  const n = Math.max(0, ...diffs.map((d) => d.seeds.length));
  if (n < 2) {
    return [
      `Seed noise: this run has ${resultSeeds(results).length === 1 ? 'a single seed' : 'fewer than 2 finished seeds per pair of variants'}, so there are no intervals: intervals need >= 2 seeds (rerun with --seeds 3 to add two more; finished runs are kept). ` +
        'Until then a difference between variants cannot be told apart from seed noise, whatever its size.',
    ];
  }
  const pct = Math.round(CONFIDENCE * 100);
  const holds: string[] = [];
  const unclear: string[] = [];
  const lines = diffs.map((d) => {
    const m = d.domains.mixed;
    const v = verdictOf(m);
    const a = label(d.a);
    const b = label(d.b);
    const what = `${a} − ${b}: ${ci(m)} mixed PPL over ${d.seeds.length} seeds`;
    if (v === 'a<b' || v === 'a>b') {
      const order = v === 'a<b' ? `${a} < ${b}` : `${b} < ${a}`;
      holds.push(order);
      return `${what}: the interval excludes 0, so ${order} holds beyond seed noise`;
    }
    unclear.push(`${a} vs ${b}`);
    return v === 'n<2'
      ? `${what}: only one common seed, no interval`
      : `${what}: the interval contains 0, so these ${d.seeds.length} seeds do not tell which of ${a} and ${b} is lower`;
  });
  return [
    `Seed noise (${n} seeds; ${pct}% paired-t intervals of the difference in mixed PPL, paired by seed: the same seed gives both variants the same data order): ${lines.join('; ')}.`,
    `In short: ${holds.length > 0 ? `beyond seed noise — ${holds.join(', ')}` : 'no ordering holds beyond seed noise'}; ${
      unclear.length > 0 ? `not resolved by these seeds — ${unclear.join(', ')}` : 'every ordering is resolved'
    }. Each interval is ${pct}% on its own; over ${diffs.length} comparisons one may exclude 0 by chance, so a single borderline one is weak evidence.`,
  ];
}

/**
 * A short reading of the results, generated from the numbers: best variant per domain, the
 * ordering against the paper's table, how much to trust it, what S learned, the top_k caveat.
 * Plain-text paragraphs (the HTML escapes them).
 */
export function readingOf(results: CtMoeAblationResults): string[] {
  const cfg = results.config;
  const vs = scoredVariants(results);
  const out: string[] = [];
  const pending = results.order.filter((k) => results.variants[k]?.status !== 'done');
  if (vs.length === 0) return ['No variant has finished yet: rerun the same command to resume the ablation.'];
  if (pending.length > 0) {
    out.push(
      `${pending.length} of ${results.order.length} variants have not finished (${pending.join(', ')}); rerun the same command to resume them. The reading below covers the finished ones only.`,
    );
  }

  // best per domain
  const bestLines = (['code', 'prose', 'mixed'] as const).map((d) => {
    const r = ranked(results, d);
    const b = r[0]!;
    const next = r[1];
    return `${DOMAIN_NAMES[d]}: ${b.label} (${f2(b.ppl)}${next ? `; next ${next.label} ${f2(next.ppl)}, ${pct(next.ppl, b.ppl)}` : ''})`;
  });
  out.push(`Lowest final perplexity per domain — ${bestLines.join('; ')}.`);

  // against the paper
  const paper = results.paperTable;
  const inPaper = vs.filter((v) => paper[v.key]);
  if (inPaper.length >= 2) {
    const ours = [...inPaper].sort((a, b) => a.ppl.mixed - b.ppl.mixed);
    const theirs = [...inPaper].sort((a, b) => paper[a.key]!.mixed - paper[b.key]!.mixed);
    let agree = 0;
    let pairs = 0;
    for (let i = 0; i < inPaper.length; i++) {
      for (let j = i + 1; j < inPaper.length; j++) {
        const a = inPaper[i]!;
        const b = inPaper[j]!;
        pairs++;
        if (Math.sign(a.ppl.mixed - b.ppl.mixed) === Math.sign(paper[a.key]!.mixed - paper[b.key]!.mixed)) agree++;
      }
    }
    out.push(
      `Mixed-PPL ordering here: ${ours.map((v) => `${v.label} ${f2(v.ppl.mixed)}`).join(' < ')}. ` +
        `The paper's: ${theirs.map((v) => `${v.label} ${paper[v.key]!.mixed.toFixed(1)}`).join(' < ')}. ` +
        `${agree} of ${pairs} pairwise comparisons go the same way${agree === pairs ? ' (the same ordering)' : ''}.`,
    );
    const full = vs.find((v) => v.key === 'CT-MoE-Full');
    const std = vs.find((v) => v.key === 'StandardMoE');
    if (full && std) {
      const d = (['code', 'prose', 'mixed'] as const).map(
        (k) =>
          `${DOMAIN_NAMES[k]} ${f2(full.ppl[k])} vs ${f2(std.ppl[k])} (${pct(full.ppl[k], std.ppl[k])}; paper ${paper['CT-MoE-Full']![PAPER_DOMAIN[k]].toFixed(1)} vs ${paper['StandardMoE']![PAPER_DOMAIN[k]].toFixed(1)}, ${pct(paper['CT-MoE-Full']![PAPER_DOMAIN[k]], paper['StandardMoE']![PAPER_DOMAIN[k]])})`,
      );
      const rel = Math.abs(full.ppl.mixed / std.ppl.mixed - 1);
      const ahead =
        full.ppl.mixed < std.ppl.mixed
          ? 'Full is ahead on mixed PPL here, as in the paper'
          : 'Full is not ahead on mixed PPL here, unlike the paper';
      const multiSeed = resultSeeds(results).length > 1;
      const size = !multiSeed && rel < NOISE_REL ? `, but the gap (${(rel * 100).toFixed(1)}%) is small enough to be seed noise` : '';
      out.push(`CT-MoE (Full) against Standard MoE: ${d.join('; ')}. ${ahead}${size}.`);
    }
    const withMp = vs.filter((v) => v.r.flags.useTopology && v.r.flags.useGraphCollab);
    const withoutMp = vs.filter((v) => !(v.r.flags.useTopology && v.r.flags.useGraphCollab));
    if (withMp.length > 0 && withoutMp.length > 0) {
      const worstMp = Math.max(...withMp.map((v) => v.ppl.mixed));
      const bestNoMp = Math.min(...withoutMp.map((v) => v.ppl.mixed));
      out.push(
        `The paper attributes the gain to message passing: its two message-passing variants (Full, No Routing) beat both variants without it (Standard, No Collaboration). Here ${
          worstMp < bestNoMp
            ? 'that holds: every variant with message passing has a lower mixed PPL than every variant without it'
            : `that does not hold: the best variant without message passing (${f2(bestNoMp)}) is below the worst with it (${f2(worstMp)})`
        }.`,
      );
      const nc = vs.find((v) => v.key === 'CT-MoE-NoCollab');
      if (nc && std) {
        out.push(
          `Routing bias alone (No Collaboration vs Standard): ${f2(nc.ppl.mixed)} vs ${f2(std.ppl.mixed)} mixed PPL (${pct(nc.ppl.mixed, std.ppl.mixed)}); in the paper it changed little (22.7 vs 22.3).`,
        );
      }
    }
  }

  // trust
  const steps = Math.max(...vs.map((v) => v.r.steps));
  const tokens = steps * cfg.batchSize * cfg.seqLen;
  const seeds = resultSeeds(results);
  out.push(...seedReading(results));
  out.push(
    `How much to trust this: ${results.preset === 'tiny' ? 'the tiny preset is a very small model' : `preset '${results.preset}'`} (${cfg.nLayer} layers, d_model ${cfg.dModel}, ${cfg.numExperts} experts, ~${(vs[0]!.r.nParams / 1e6).toFixed(2)} M parameters) trained for ${steps} steps (~${(tokens / 1e6).toFixed(2)} M tokens) ` +
      (seeds.length === 1
        ? `with a single seed (${cfg.seed}), and every variant sees the same data order. There are no error bars; differences of a few PPL (a few percent) between variants may be seed noise and should not be read as an effect without more seeds or longer runs. `
        : `under ${seeds.length} seeds (${seeds.join(', ')}; each seed changes init, dropout and data order, and the variants of one seed share its data order); PPLs are means over seeds. `) +
      `Absolute perplexities are not comparable with the paper's: other data (the prose domain is State of the Union addresses, not arXiv), another tokenizer (GPT-2 BPE truncated to ${cfg.vocabSize}) and a far smaller model.`,
  );

  // what S learned
  const sMaxU = results.reference.sMaxUniform;
  const sEntU = results.reference.sEntropyUniform;
  const sLines = vs
    .filter((v) => v.r.finalS !== null)
    .map((v) => {
      const last = v.r.logs.at(-1);
      if (!last || last.sMax === null || last.sEntropy === null) return null;
      const ratio = last.sMax / sMaxU;
      const shape =
        ratio > 3
          ? 'strongly concentrated: rows put most of their weight on one or two partners'
          : ratio > 1.5
            ? 'moved away from uniform, moderately'
            : 'close to uniform';
      const eig = v.r.eigenspectrum
        ? `; top normalised |λ| ${v.r.eigenspectrum.normalizedAbs[0]!.toFixed(3)} vs flat ${results.reference.eigUniform.toFixed(3)}`
        : '';
      return `${v.label}: S max ${last.sMax.toFixed(3)} (${ratio.toFixed(1)}× the uniform ${sMaxU.toFixed(3)}), S entropy ${last.sEntropy.toFixed(3)} vs uniform log(N−1) = ${sEntU.toFixed(3)} (${pct(last.sEntropy, sEntU)})${eig} — ${shape}`;
    })
    .filter((x): x is string => x !== null);
  if (sLines.length > 0) {
    out.push(
      `What S learned (last logged values, mean over layers; S starts uniform at 1/(N−1) off the diagonal): ${sLines.join('; ')}. ` +
        "S reaches the loss through the routing bias (column sums) and, with top_k ≥ 3, through the message passing; No Collaboration's S learns only through the routing bias and No Routing's only through message passing.",
    );
  }

  // top_k
  if (cfg.topK === 2) {
    out.push(
      "This run uses top_k = 2, as the paper. At k = 2 the renormalised 2×2 sub-matrix of S is [[0,1],[1,0]] whatever S is, so message passing is a fixed exchange between the two selected experts and carries no gradient to S: S learns only through the routing bias, and No Routing's S never leaves uniform.",
    );
  } else {
    out.push(
      `This run uses top_k = ${cfg.topK}, whereas the paper used 2. At k = 2 the renormalised 2×2 sub-matrix of S is [[0,1],[1,0]] whatever S is, so message passing carries no gradient to S; with k = ${cfg.topK} S shapes the message passing. Full and No Routing therefore test a mechanism the paper's k = 2 configuration could not learn, and these numbers are not a like-for-like reproduction of the paper's.`,
    );
  }
  return out;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function tableHtml(results: CtMoeAblationResults): string {
  const rows = tableCells(results);
  const head = `<tr><th>Model</th>${TABLE_COLUMNS.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>`;
  const body = rows
    .map(
      (r) =>
        `<tr data-variant="${esc(r.key)}"><th scope="row">${esc(r.label)}</th>${r.cells.map((c) => `<td${c.best ? ' class="best"' : ''}>${esc(c.text)}</td>`).join('')}</tr>`,
    )
    .join('\n');
  return `<table class="ablation">\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

function pairedHtml(results: CtMoeAblationResults): string {
  const diffs = pairedDifferences(results);
  const label = (k: string) => results.variants[k]?.label ?? k;
  if (Math.max(0, ...diffs.map((d) => d.seeds.length)) < 2)
    return '<p>Paired differences between variants need &gt;= 2 seeds (<code>--seeds 3</code>); this run has one.</p>';
  const rows = diffs
    .map((d) => {
      const v = verdictOf(d.domains.mixed);
      const verdict = v === 'a<b' ? `${label(d.a)} lower` : v === 'a>b' ? `${label(d.b)} lower` : 'not resolved';
      return `<tr><th scope="row">${esc(label(d.a))} − ${esc(label(d.b))}</th><td>${d.seeds.length}</td>${PPL_DOMAINS.map((k) => `<td>${esc(ci(d.domains[k]))}</td>`).join('')}<td>${esc(verdict)}</td></tr>`;
    })
    .join('\n');
  return (
    `<table class="config"><thead><tr><th>difference (PPL)</th><th>seeds</th><th>code</th><th>prose</th><th>mixed</th><th>mixed, beyond seed noise?</th></tr></thead><tbody>\n${rows}\n</tbody></table>` +
    `<p class="muted">Mean difference over the seeds both variants finished, with its ${Math.round(CONFIDENCE * 100)}% paired-t interval [lo, hi]; negative: the first variant has the lower PPL. "not resolved": the interval contains 0.</p>`
  );
}

function paperTableHtml(results: CtMoeAblationResults): string {
  const rows = Object.entries(results.paperTable).map(([k, p]) => {
    const label = results.variants[k]?.label ?? k;
    const best = (d: 'code' | 'arxiv' | 'mixed') => Math.min(...Object.values(results.paperTable).map((x) => x[d])) === p[d];
    return `<tr><th scope="row">${esc(label)}</th>${(['code', 'arxiv', 'mixed'] as const).map((d) => `<td${best(d) ? ' class="best"' : ''}>${p[d].toFixed(1)}</td>`).join('')}</tr>`;
  });
  return `<table class="ablation"><thead><tr><th>Model (paper)</th><th>Code PPL</th><th>Arxiv PPL</th><th>Mixed PPL</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function configHtml(results: CtMoeAblationResults): string {
  const overrides = configOverrides(results);
  const base = (PRESETS as Record<string, CtMoeExperimentConfig>)[results.preset];
  const rows = Object.entries(results.config)
    .map(([k, v]) => {
      const changed = k in overrides;
      // a key the preset leaves unset (precision) stringifies to undefined
      const preset = base ? (JSON.stringify((base as unknown as Record<string, unknown>)[k]) ?? 'unset') : '';
      return `<tr${changed ? ' class="changed"' : ''}><th scope="row">${esc(k)}</th><td>${esc(JSON.stringify(v))}</td><td>${changed ? `overridden (preset: ${esc(preset)})` : ''}</td></tr>`;
    })
    .join('\n');
  const variantRows = doneVariants(results)
    .map((v) => {
      const f = v.r.flags;
      const extra = Object.entries(v.r.config).filter(
        ([k, x]) => JSON.stringify(x) !== JSON.stringify((results.config as unknown as Record<string, unknown>)[k]),
      );
      return `<tr><th scope="row">${esc(v.label)}</th><td>${esc(v.key)}</td><td>${f.useTopology ? 'yes' : 'no'}</td><td>${f.useTopology && f.useGraphRouting ? 'yes' : 'no'}</td><td>${f.useTopology && f.useGraphCollab ? 'yes' : 'no'}</td><td>${extra.length ? esc(JSON.stringify(Object.fromEntries(extra))) : '—'}</td></tr>`;
    })
    .join('\n');
  return (
    `<p>Preset <code>${esc(results.preset)}</code>; overrides: <code>${esc(JSON.stringify(overrides))}</code>; precision <code>${esc(results.precision ?? 'fp32')}</code>.</p>\n` +
    `<table class="config"><thead><tr><th>field</th><th>value</th><th></th></tr></thead><tbody>\n${rows}\n</tbody></table>\n` +
    `<h3>Variants</h3><table class="config"><thead><tr><th>variant</th><th>key</th><th>S</th><th>routing bias</th><th>message passing</th><th>own overrides</th></tr></thead><tbody>\n${variantRows}\n</tbody></table>`
  );
}

function timingHtml(results: CtMoeAblationResults): string {
  let totalTrain = 0;
  let totalWall = 0;
  const rows = results.order
    .map((k) => {
      const v = results.variants[k]!;
      const r = v.result;
      const wall = results.wallSec[k];
      if (wall !== undefined) totalWall += wall;
      if (!r)
        return `<tr><th scope="row">${esc(v.label)}</th><td colspan="6">pending</td><td>${wall !== undefined ? wall.toFixed(1) : '—'}</td></tr>`;
      totalTrain += r.timing.trainSec;
      const tps = (r.steps * r.config.batchSize * r.config.seqLen) / Math.max(r.timing.trainSec, 1e-9);
      return (
        `<tr><th scope="row">${esc(v.label)}</th><td>${r.steps}</td><td>${r.timing.trainSec.toFixed(1)}</td><td>${r.timing.evalSec.toFixed(1)}</td>` +
        `<td>${(r.timing.secPerStep * 1000).toFixed(1)}</td><td>${Math.round(tps).toLocaleString('en-US')}</td><td>${r.timing.resumedFromStep ?? '—'}</td><td>${wall !== undefined ? wall.toFixed(1) : '—'}</td></tr>`
      );
    })
    .join('\n');
  const backends = [...new Set(doneVariants(results).map((v) => v.r.backend))];
  return (
    `<table class="config"><thead><tr><th>variant</th><th>steps</th><th>train s</th><th>eval s</th><th>ms/step</th><th>train tokens/s</th><th>resumed from step</th><th>wall s (last invocation)</th></tr></thead><tbody>\n${rows}\n` +
    `<tr class="total"><th scope="row">total</th><td></td><td>${totalTrain.toFixed(1)}</td><td colspan="4"></td><td>${totalWall.toFixed(1)}</td></tr></tbody></table>\n` +
    `<p>Train seconds add up across resumes (validation at log points excluded); the wall column is what the last <code>runAblation</code> call spent on each variant (near zero for a variant it found finished). Backend: ${backends.map(esc).join('; ') || '—'}. Results updated ${esc(results.updatedAt)}.</p>`
  );
}

const CSS = `
body{font-family:'DejaVu Sans',system-ui,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0}th,td{padding:.3em .7em;border-bottom:1px solid #e4e4e4;text-align:right}
th[scope=row]{text-align:left}thead th{border-bottom:2px solid #999}
table.ablation td.best{color:${BEST_COLOR};font-weight:bold;background:#E3F1E8}
table.config td,table.config th{text-align:left;font-size:.92em}tr.changed td{background:#FFF6E0}tr.total{font-weight:bold}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.92em;color:#444}
.reading li{margin:.45em 0}code{background:#f4f4f4;padding:0 .25em}.muted{color:#666;font-size:.9em}`;

export interface ReportOptions {
  /** The figures to embed (name + caption), as written under DIR/figures/; default: allFigures(results). */
  figures?: readonly Pick<FigureEntry, 'name' | 'caption'>[];
}

/** The report as one HTML string (figures referenced as figures/<name>.png). */
export function renderReport(results: CtMoeAblationResults, opts: ReportOptions = {}): string {
  const figures = opts.figures ?? allFigures(results);
  const t = ablationTable(results);
  const done = t.rows.filter((r) => r.status === 'done').length;
  const figHtml = figures
    .map(
      (f) =>
        `<figure id="${esc(f.name)}"><img src="${FIGURES_DIR}/${encodeURI(f.name)}.png" alt="${esc(f.name)}"><figcaption><b>${esc(f.name)}</b> — ${esc(f.caption)}</figcaption></figure>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>CT-MoE ablation — ${esc(results.preset)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>CT-MoE ablation</h1>
<p class="muted">moekit reproduction of pingBenM/CT-MoE (learned expert-collaboration topology S). Preset <code>${esc(results.preset)}</code>, ${done} of ${t.rows.length} variants finished, results updated ${esc(results.updatedAt)}.</p>

<h2>Results</h2>
${tableHtml(results)}
<p class="muted">Green bold: lowest PPL in its column. PPL = final validation perplexity per domain; Routing Ent, S Entropy and S Max are the last logged values (mean over layers); Route = S column sums bias the router, Collab = message passing over the selected experts. Prose = State of the Union addresses (arXiv summaries in the paper).</p>
<p class="muted">${esc(seedsLine(results))}.</p>
<h3>Paired differences between variants</h3>
${pairedHtml(results)}
<p>The paper's table, for comparison (10 epochs, d_model 512, 16 experts, top-2):</p>
${paperTableHtml(results)}

<h2>Reading</h2>
<ul class="reading">
${readingOf(results)
  .map((p) => `<li>${esc(p)}</li>`)
  .join('\n')}
</ul>

<h2>Figures</h2>
${figHtml}

<h2>Configuration</h2>
${configHtml(results)}

<h2>Wall-clock timings</h2>
${timingHtml(results)}

<h2>Notes</h2>
<ul>
${results.notes.map((n) => `<li>${esc(n)}</li>`).join('\n')}
<li>fig4's contour at 1/(N−1) is drawn as black outlines around the cells whose S is above that level (S is a grid of discrete cells; the outlined set is the region the contour encloses).</li>
</ul>
</body>
</html>
`;
}

/** Write DIR/report.html atomically; returns its path. */
export async function writeReport(results: CtMoeAblationResults, dir: string, opts: ReportOptions = {}): Promise<string> {
  const file = join(dir, REPORT_HTML);
  await writeFileAtomic(file, renderReport(results, opts));
  return file;
}

/** The ablation table as aligned plain text (the CLI prints it); best PPL marked with '*'. */
export function tableText(results: CtMoeAblationResults): string {
  const rows = tableCells(results);
  const header = ['Model', ...TABLE_COLUMNS];
  const lines = rows.map((r) => [r.label, ...r.cells.map((c) => (c.best ? `${c.text}*` : c.text))]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmtRow = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmtRow(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(fmtRow), '* lowest PPL in its column'].join('\n');
}
