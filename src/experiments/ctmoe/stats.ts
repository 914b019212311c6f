// Seed statistics of a multi-seed CT-MoE ablation: per variant and domain the mean final PPL
// with a 95% Student-t interval over seeds, and per pair of variants the paired difference
// (same seed = same data order and init seed) with a paired-t interval. An interval needs at
// least 2 seeds; with one, `halfWidth` is null.
import tQuantile from '@stdlib/stats-base-dists-t-quantile';
import type { CtMoeVariantResult } from './train.js';

export type PplDomain = 'code' | 'prose' | 'mixed';
export const PPL_DOMAINS: readonly PplDomain[] = ['code', 'prose', 'mixed'];

/** Two-sided confidence level of every interval. */
export const CONFIDENCE = 0.95;

export interface MeanInterval {
  n: number;
  mean: number;
  /** Sample standard deviation (n - 1 in the denominator); null for n < 2. */
  sd: number | null;
  /** t_{(1+CONFIDENCE)/2, n-1} · sd / √n; null for n < 2. */
  halfWidth: number | null;
  lo: number | null;
  hi: number | null;
}

/** Mean and the Student-t interval of the mean of `xs` (non-empty). */
export function meanInterval(xs: readonly number[]): MeanInterval {
  const n = xs.length;
  if (n === 0) throw new RangeError('meanInterval: no values');
  const mean = xs.reduce((s, v) => s + v, 0) / n;
  if (n < 2) return { n, mean, sd: null, halfWidth: null, lo: null, hi: null };
  const sd = Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1));
  const halfWidth = tQuantile((1 + CONFIDENCE) / 2, n - 1) * (sd / Math.sqrt(n));
  return { n, mean, sd, halfWidth, lo: mean - halfWidth, hi: mean + halfWidth };
}

/** One finished (variant, seed) run. */
export interface SeedRun {
  seed: number;
  result: CtMoeVariantResult;
}

/** Mean and interval of the final PPL per domain over a variant's finished seeds (null: none finished). */
export function domainIntervals(runs: readonly SeedRun[]): Record<PplDomain, MeanInterval> | null {
  if (runs.length === 0) return null;
  const out = {} as Record<PplDomain, MeanInterval>;
  for (const d of PPL_DOMAINS) out[d] = meanInterval(runs.map((r) => r.result.domainPpl[d]));
  return out;
}

export interface PairedDifference {
  /** a − b, per domain, over the seeds both finished. */
  a: string;
  b: string;
  seeds: number[];
  domains: Record<PplDomain, MeanInterval>;
}

/** Paired differences a − b of the final PPL per domain over the seeds both variants finished (null: no common seed). */
export function pairedDifference(a: string, runsA: readonly SeedRun[], b: string, runsB: readonly SeedRun[]): PairedDifference | null {
  const byB = new Map(runsB.map((r) => [r.seed, r.result]));
  const common = runsA.filter((r) => byB.has(r.seed));
  if (common.length === 0) return null;
  const domains = {} as Record<PplDomain, MeanInterval>;
  for (const d of PPL_DOMAINS) domains[d] = meanInterval(common.map((r) => r.result.domainPpl[d] - byB.get(r.seed)!.domainPpl[d]));
  return { a, b, seeds: common.map((r) => r.seed), domains };
}

/**
 * What an interval of a − b says: 'a<b' or 'a>b' when it excludes 0 (the ordering holds beyond
 * seed noise at this confidence), 'unclear' when it contains 0, 'n<2' without an interval.
 */
export type Verdict = 'a<b' | 'a>b' | 'unclear' | 'n<2';

export function verdictOf(m: MeanInterval): Verdict {
  if (m.lo === null || m.hi === null) return 'n<2';
  if (m.hi < 0) return 'a<b';
  if (m.lo > 0) return 'a>b';
  return 'unclear';
}
