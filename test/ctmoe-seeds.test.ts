// Multi-seed CT-MoE ablation: the 95% Student-t intervals and paired differences against closed
// forms written here (t quantiles for 1 and 2 degrees of freedom in closed form), resume of a
// multi-seed run killed inside its second seed, the table / fig7 intervals, and the report's
// words for a clear ordering, an unclear one and a single seed.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { parseSeedList, runSeeds } from '../src/cli/ablate.js';
import {
  type CtMoeAblationResults,
  type AblationProgress,
  PAPER_TABLE,
  TINY_PRESET,
  VARIANTS,
  type CtMoeVariantResult,
  meanInterval,
  pairedDifference,
  runAblation,
  verdictOf,
} from '../src/experiments/ctmoe/index.js';
import { ablationTable, fig7DomainPpl, tableCells } from '../src/experiments/ctmoe/figures/index.js';
import { pairedDifferences, readingOf, renderReport, seedReading } from '../src/experiments/ctmoe/report.js';
import { MICRO, synthData } from './helpers/ctmoe-micro.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'ctmoe-seeds-'));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

// t_{0.975, df} in closed form: df = 1 is Cauchy, tan(π(p − 1/2)); df = 2: (2p − 1) / √(2p(1 − p))
const T975 = { 1: Math.tan(Math.PI * 0.475), 2: 0.95 / Math.sqrt(2 * 0.975 * 0.025) };

const close = (a: number | null, b: number, tol = 1e-9, what = '') => {
  assert.ok(a !== null && Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
};

test('meanInterval: mean ± t_{0.975,n-1}·s/√n, s with n − 1, against closed forms for n = 2 and 3', () => {
  // n = 3: mean 5, deviations −1, −1, 2 → s² = 6/2 = 3
  const m3 = meanInterval([4, 4, 7]);
  close(m3.mean, 5);
  close(m3.sd, Math.sqrt(3));
  close(m3.halfWidth, (T975[2] * Math.sqrt(3)) / Math.sqrt(3), 1e-9, 'n=3 half-width');
  close(m3.lo, 5 - T975[2]);
  close(m3.hi, 5 + T975[2]);
  // n = 2: mean 1.5, s = |a − b| / √2 = 1/√2
  const m2 = meanInterval([1, 2]);
  close(m2.halfWidth, (T975[1] * (1 / Math.SQRT2)) / Math.SQRT2, 1e-9, 'n=2 half-width');
  // one value: no interval
  const m1 = meanInterval([3.5]);
  assert.deepEqual(m1, { n: 1, mean: 3.5, sd: null, halfWidth: null, lo: null, hi: null });
  assert.throws(() => meanInterval([]), /no values/);
});

function run(seed: number, ppl: { code: number; prose: number; mixed: number }): { seed: number; result: CtMoeVariantResult } {
  return { seed, result: { domainPpl: ppl } as CtMoeVariantResult };
}

test('pairedDifference: a − b over the common seeds only, with the paired-t interval', () => {
  const a = [
    run(1, { code: 10, prose: 20, mixed: 15 }),
    run(2, { code: 11, prose: 19, mixed: 16 }),
    run(3, { code: 9, prose: 22, mixed: 14 }),
  ];
  // b has seeds 1, 2, 3 and an extra 4 that a lacks
  const b = [
    run(2, { code: 13, prose: 19.5, mixed: 18 }),
    run(1, { code: 12, prose: 20, mixed: 17.5 }),
    run(3, { code: 12, prose: 21, mixed: 15.5 }),
    run(4, { code: 99, prose: 99, mixed: 99 }),
  ];
  const d = pairedDifference('A', a, 'B', b)!;
  assert.deepEqual(d.seeds, [1, 2, 3]);
  // mixed differences: −2.5, −2, −1.5 → mean −2, s² = Σ(d − m)² / 2
  const diffs = [-2.5, -2, -1.5];
  const m = diffs.reduce((s, x) => s + x, 0) / 3;
  const s = Math.sqrt(diffs.reduce((acc, x) => acc + (x - m) ** 2, 0) / 2);
  close(d.domains.mixed.mean, -2);
  close(d.domains.mixed.halfWidth, (T975[2] * s) / Math.sqrt(3));
  assert.equal(verdictOf(d.domains.mixed), 'a<b'); // −2 ± 1.24
  // code: −2, −2, −3 → clearly below; prose: 0, −0.5, +1 → unclear
  assert.equal(verdictOf(d.domains.code), 'a<b');
  assert.equal(verdictOf(d.domains.prose), 'unclear');
  assert.equal(verdictOf(meanInterval([2, 3, 2.5])), 'a>b');
  assert.equal(verdictOf(meanInterval([2])), 'n<2');
  assert.equal(pairedDifference('A', a, 'B', [run(9, { code: 1, prose: 1, mixed: 1 })]), null);
});

test('seeds from the CLI: --seed-list distinct integers, --seeds n consecutive from the config seed', () => {
  assert.deepEqual(parseSeedList('7, 3,11'), [7, 3, 11]);
  assert.throws(
    () => parseSeedList('1,1'),
    (e: Error) => e instanceof InvalidArgumentError && /seed 1 is named twice/.test(e.message),
  );
  assert.throws(() => parseSeedList('1,,2'), /comma-separated integers/);
  assert.throws(() => parseSeedList('1,-2'), /--seed-list must be a decimal integer in \[0, /);
  assert.deepEqual(runSeeds(42, { seeds: 3 }), [42, 43, 44]);
  assert.deepEqual(runSeeds(42, {}), [42]);
  assert.deepEqual(runSeeds(42, { seedList: [5, 6] }), [5, 6]);
});

test('a multi-seed run killed in its second seed resumes per (variant, seed) and equals the uninterrupted run', () => {
  const data = synthData();
  const variants = ['CT-MoE-Full', 'StandardMoE'] as const;
  const seeds = [MICRO.seed, MICRO.seed + 1];
  const reference = runAblation({ preset: MICRO, outDir: tmp(), variants, data, seeds });

  const dir = tmp();
  runAblation({ preset: MICRO, outDir: dir, variants, data }); // the first seed alone, finished
  const killed: AblationProgress[] = [];
  const partial = runAblation({ preset: MICRO, outDir: dir, variants, data, seeds, stopAfterStep: 6, onProgress: (p) => killed.push(p) });
  assert.deepEqual(
    killed.filter((e) => e.phase === 'skip').map((e) => [e.variant, e.seed]),
    [
      ['CT-MoE-Full', MICRO.seed],
      ['StandardMoE', MICRO.seed],
    ],
  );
  assert.ok(killed.some((e) => e.phase === 'interrupted' && e.variant === 'CT-MoE-Full' && e.seed === seeds[1]));
  assert.equal(partial.variants['CT-MoE-Full']!.runs![1]!.status, 'pending');
  assert.equal(partial.variants['CT-MoE-Full']!.status, 'done'); // the first seed's run
  const seedDir = join(dir, 'CT-MoE-Full', `seed-${seeds[1]}`);
  assert.ok(existsSync(join(seedDir, 'ckpt-00000004.manifest.json')), 'the second seed checkpoints in its own directory');

  const resumed: AblationProgress[] = [];
  const done = runAblation({ preset: MICRO, outDir: dir, variants, data, seeds, onProgress: (p) => resumed.push(p) });
  assert.deepEqual(
    resumed.filter((e) => e.phase === 'skip' || e.phase === 'resume' || e.phase === 'start').map((e) => [e.phase, e.variant, e.seed]),
    [
      ['skip', 'CT-MoE-Full', seeds[0]],
      ['skip', 'StandardMoE', seeds[0]],
      ['resume', 'CT-MoE-Full', seeds[1]],
      ['start', 'StandardMoE', seeds[1]],
    ],
  );
  assert.deepEqual(done.seeds, seeds);
  for (const key of variants) {
    const runs = done.variants[key]!.runs!;
    assert.deepEqual(
      runs.map((r) => [r.seed, r.status]),
      seeds.map((s) => [s, 'done']),
    );
    for (const [i, r] of runs.entries()) {
      const want = reference.variants[key]!.runs![i]!.result!;
      assert.deepEqual(r.result!.trainLoss, want.trainLoss, `${key} seed ${r.seed}: per-step losses`);
      assert.deepEqual(r.result!.domainPpl, want.domainPpl);
    }
    assert.equal(runs[1]!.result!.config.seed, seeds[1]);
    assert.notDeepEqual(runs[1]!.result!.trainLoss, runs[0]!.result!.trainLoss, 'another seed trains differently');
    assert.deepEqual(done.variants[key]!.result, runs[0]!.result, 'result stays the first seed’s run');
  }
  assert.equal(done.variants['CT-MoE-Full']!.runs![1]!.result!.timing.resumedFromStep, 4);
  assert.throws(
    () => runAblation({ preset: MICRO, outDir: tmp(), variants, data, seeds: [7, 8] }),
    /first seed \(7\) must be the config's seed/,
  );
});

// synthetic results: mixed PPL per variant and seed (code = mixed − 5, prose = mixed + 5)
const N = 4;
function synthVariant(k: number, seed: number, mixed: number): CtMoeVariantResult {
  const v = VARIANTS[k]!;
  const hasS = v.flags.useTopology;
  return {
    key: v.key,
    label: v.label,
    color: v.color,
    flags: v.flags,
    config: { ...TINY_PRESET, numExperts: N, seed },
    nParams: 1000,
    nTopologyParams: hasS ? 2 * N * N : 0,
    steps: 10,
    trainLoss: [3, 2],
    trainCe: [3, 2],
    logs: [
      {
        step: 10,
        loss: 2,
        ce: 2,
        valPpl: mixed,
        routingEntropy: 1,
        routingEntropyPerLayer: [1, 1],
        sEntropy: hasS ? 1 : null,
        sEntropyPerLayer: hasS ? [1, 1] : null,
        sMax: hasS ? 0.4 : null,
        sMaxPerLayer: hasS ? [0.4, 0.4] : null,
        lr: 1e-3,
        sLr: 1e-1,
        elapsedSec: 1,
      },
    ],
    domainPpl: { code: mixed - 5, prose: mixed + 5, mixed },
    routingFreq: { code: [0.25, 0.25, 0.25, 0.25], prose: [0.25, 0.25, 0.25, 0.25] },
    specialisation: [0, 0, 0, 0],
    finalS: hasS ? [Array.from({ length: N }, (_, i) => Array.from({ length: N }, (_, j) => (i === j ? 0 : 1 / 3)))] : null,
    eigenspectrum: null,
    timing: { trainSec: 1, evalSec: 1, secPerStep: 0.1, resumedFromStep: null },
    backend: 'test',
  };
}

function synthResults(mixed: Record<string, number[]>, seeds: number[]): CtMoeAblationResults {
  return {
    format: 'moekit-ctmoe-ablation',
    version: 1,
    preset: 'tiny',
    config: { ...TINY_PRESET, numExperts: N, seed: seeds[0]! },
    order: VARIANTS.map((v) => v.key),
    seeds,
    variants: Object.fromEntries(
      VARIANTS.map((v, k) => {
        const runs = seeds.map((seed, i) => ({ seed, status: 'done' as const, result: synthVariant(k, seed, mixed[v.key]![i]!) }));
        return [v.key, { label: v.label, color: v.color, status: 'done' as const, result: runs[0]!.result, runs }];
      }),
    ),
    reference: { sEntropyUniform: Math.log(N - 1), sMaxUniform: 1 / (N - 1), routingEntropyUniform: Math.log(N), eigUniform: 1 / N },
    paperTable: PAPER_TABLE,
    notes: [],
    wallSec: {},
    updatedAt: '2026-01-01T00:00:00.000Z',
  };
}

// Full is below Standard by 4–6 in every seed (clear); NoRouting vs NoCollab swap order by seed (unclear)
const MIXED = {
  'CT-MoE-Full': [40, 41, 39],
  StandardMoE: [45, 46, 45],
  'CT-MoE-NoCollab': [44, 47, 45],
  'CT-MoE-NoRouting': [46, 44, 45.5],
};

test('the report says which orderings hold beyond seed noise and which do not', () => {
  const results = synthResults(MIXED, [1, 2, 3]);
  const diffs = pairedDifferences(results);
  assert.deepEqual(
    diffs.map((d) => `${d.a}-${d.b}`),
    [
      'CT-MoE-Full-CT-MoE-NoRouting',
      'CT-MoE-Full-CT-MoE-NoCollab',
      'CT-MoE-Full-StandardMoE',
      'CT-MoE-NoRouting-CT-MoE-NoCollab',
      'CT-MoE-NoRouting-StandardMoE',
      'CT-MoE-NoCollab-StandardMoE',
    ],
  );
  const text = seedReading(results).join('\n');
  // Full − Standard: −5, −5, −6 → mean −5.33, s = 0.577, half-width 4.303 · 0.577 / √3 = 1.43
  assert.match(
    text,
    /CT-MoE \(Full\) − Standard MoE: −5\.33 \[−6\.77, −3\.90\] mixed PPL over 3 seeds: the interval excludes 0, so CT-MoE \(Full\) < Standard MoE holds beyond seed noise/,
  );
  // NoRouting − NoCollab: +2, −3, +0.5 → contains 0
  assert.match(
    text,
    /CT-MoE \(No Routing\) − CT-MoE \(No Collaboration\): −0\.17 \[[^\]]+\] mixed PPL over 3 seeds: the interval contains 0, so these 3 seeds do not tell which of CT-MoE \(No Routing\) and CT-MoE \(No Collaboration\) is lower/,
  );
  assert.match(
    text,
    /In short: beyond seed noise — [^;]*CT-MoE \(Full\) < Standard MoE[^;]*; not resolved by these seeds — [^.]*CT-MoE \(No Routing\) vs CT-MoE \(No Collaboration\)/,
  );
  assert.ok(readingOf(results).some((p) => p.includes('under 3 seeds (1, 2, 3')));
  // the table: mean ± half-width; best by mean
  const t = ablationTable(results);
  const full = t.rows.find((r) => r.key === 'CT-MoE-Full')!;
  const fullIv = meanInterval(MIXED['CT-MoE-Full']);
  close(full.pplInterval!.mixed.halfWidth, fullIv.halfWidth!);
  assert.equal(t.best.mixed, 'CT-MoE-Full');
  const cell = tableCells(results)
    .find((r) => r.key === 'CT-MoE-Full')!
    .cells.find((c) => c.column === 'Mixed PPL')!;
  assert.equal(cell.text, `40.00 ± ${fullIv.halfWidth!.toFixed(2)}`);
  assert.ok(cell.best);
  // fig7: mean bar and the interval's ends per (domain, variant)
  const values = (
    fig7DomainPpl(results) as unknown as { data: { values: { domain: string; variant: string; ppl: number; lo: number; hi: number }[] } }
  ).data.values;
  const fullMixed = values.find((x) => x.domain === 'mixed' && x.variant === 'CT-MoE (Full)')!;
  close(fullMixed.ppl, 40);
  close(fullMixed.lo, fullIv.lo!);
  close(fullMixed.hi, fullIv.hi!);
  const html = renderReport(results, { figures: [] });
  assert.match(html, /Paired differences between variants/);
  assert.match(
    html,
    /<td>3<\/td><td>−5\.33 \[−6\.77, −3\.90\]<\/td><td>−5\.33 \[−6\.77, −3\.90\]<\/td><td>−5\.33 \[−6\.77, −3\.90\]<\/td><td>CT-MoE \(Full\) lower<\/td>/,
  );
});

test('with one seed the report says intervals need >= 2 seeds, and the table has none', () => {
  const one = synthResults(Object.fromEntries(Object.entries(MIXED).map(([k, v]) => [k, v.slice(0, 1)])), [1]);
  assert.match(seedReading(one).join('\n'), /a single seed, so there are no intervals: intervals need >= 2 seeds/);
  assert.match(renderReport(one, { figures: [] }), /Paired differences between variants need &gt;= 2 seeds/);
  const cell = tableCells(one)[0]!.cells.find((c) => c.column === 'Mixed PPL')!;
  assert.equal(cell.text, '40.00');
  // a results.json from before seeds existed (no `seeds`, no `runs`) reads as its config's seed alone
  const old = synthResults({ ...Object.fromEntries(Object.entries(MIXED).map(([k, v]) => [k, v.slice(0, 1)])) }, [1]);
  delete old.seeds;
  for (const v of Object.values(old.variants)) delete v.runs;
  assert.equal(tableCells(old)[0]!.cells.find((c) => c.column === 'Mixed PPL')!.text, '40.00');
  assert.match(seedReading(old).join('\n'), /intervals need >= 2 seeds/);
});
