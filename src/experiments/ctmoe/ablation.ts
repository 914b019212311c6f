// The CT-MoE ablation: every variant trained and evaluated under each seed in turn (seed by
// seed, so the first seeds' comparisons are complete early), finished (variant, seed) pairs
// skipped, unfinished ones resumed from their last checkpoint; results.json (atomic) gathers
// what figures and the report need. The first seed (the config's `seed`) runs in
// <outDir>/<key>/, as a single-seed run always has; every other seed in <outDir>/<key>/seed-<s>/.
import { join } from 'node:path';
import { writeJsonAtomicSync } from '../../io/atomic.js';
import { ensureDirSync } from '../../io/ensure-dir.js';
import {
  type CtMoeExperimentConfig,
  type PresetName,
  type VariantName,
  type VariantSpec,
  VARIANTS,
  experimentConfig,
  resolveVariant,
} from './config.js';
import type { Precision } from './precision.js';
import { type CtMoeData, loadCtMoeData } from './data.js';
import { checkTrainingMemory } from './memory.js';
import { parallelLayout } from '../../dist/cli-parallel.js';
import type { NonFinitePolicy } from '../nonfinite.js';
import { type CtMoeProgress, type CtMoeVariantResult, variantRun } from './train.js';
import { type Reads, runReadsAsync, runReadsSync } from '../../tensor/reads.js';
import type { DataParallel } from '../../dist/data-parallel.js';
import type { ExpertParallel } from '../../dist/expert-parallel.js';

export const RESULTS_JSON = 'results.json';

export interface RunAblationOptions {
  preset: PresetName | CtMoeExperimentConfig;
  /** Config changes on top of the preset (e.g. { steps: 100 }). */
  overrides?: Partial<CtMoeExperimentConfig>;
  outDir: string;
  /** Default: the seed's four, in its order. */
  variants?: readonly (VariantName | VariantSpec)[];
  onProgress?: (p: AblationProgress) => void;
  /** Pre-loaded data (tests); default: the two domains at the config's vocab size. */
  data?: CtMoeData;
  /** Stop the variant being trained after this step, as if killed (tests). */
  stopAfterStep?: number;
  /** What a non-finite loss or gradient norm does (see RunVariantOptions.onNonFinite). */
  onNonFinite?: NonFinitePolicy;
  /** Checkpoints kept per variant (default 2). */
  keepCheckpoints?: number;
  /** Data or expert parallelism over MPI ranks; only rank 0 writes results. */
  dataParallel?: DataParallel | ExpertParallel;
  /**
   * Seeds (init, dropout, data order), each run for every variant; distinct, the first equal to
   * the config's `seed` (default: that seed alone).
   */
  seeds?: readonly number[];
}

/** A progress event of one (variant, seed) run. */
export type AblationProgress = CtMoeProgress & { seed: number };

/** One (variant, seed) run in results.json. */
export interface CtMoeSeedRun {
  seed: number;
  status: 'done' | 'pending';
  result: CtMoeVariantResult | null;
}

export interface CtMoeAblationResults {
  format: 'moekit-ctmoe-ablation';
  version: 1;
  preset: string;
  config: CtMoeExperimentConfig;
  /** Training precision (`--precision`); absent in results written before the option (fp32). */
  precision?: Precision;
  /** Variant keys in run (and figure) order. */
  order: string[];
  /** Every seed of the run, the config's `seed` first (absent in files written before seeds existed: that seed alone). */
  seeds?: number[];
  /**
   * Per variant: `status` / `result` are the first seed's run (the curves, S and routing figures
   * show it); `runs` holds every seed's, the first included (absent in older files).
   */
  variants: Record<
    string,
    { label: string; color: string; status: 'done' | 'pending'; result: CtMoeVariantResult | null; runs?: CtMoeSeedRun[] }
  >;
  /** Reference lines for the figures: uniform S entropy log(N-1), uniform S max 1/(N-1), routing entropy log N, eigenspectrum 1/N. */
  reference: { sEntropyUniform: number; sMaxUniform: number; routingEntropyUniform: number; eigUniform: number };
  /** The seed paper's table (code / arxiv / mixed PPL) for comparison; its prose domain is arXiv. */
  paperTable: Record<string, { code: number; arxiv: number; mixed: number }>;
  notes: string[];
  /** Wall-clock seconds spent in this call, per variant, summed over its seeds (train + eval, this session only). */
  wallSec: Record<string, number>;
  updatedAt: string;
}

export const PAPER_TABLE = {
  StandardMoE: { code: 25.5, arxiv: 19.0, mixed: 22.3 },
  'CT-MoE-NoCollab': { code: 26.4, arxiv: 18.9, mixed: 22.7 },
  'CT-MoE-NoRouting': { code: 20.0, arxiv: 17.7, mixed: 19.0 },
  'CT-MoE-Full': { code: 19.7, arxiv: 17.5, mixed: 18.7 },
};

/** Seeds of a results file: `seeds`, or the config's seed for a file written before seeds existed. */
export function resultSeeds(results: CtMoeAblationResults): number[] {
  return results.seeds ?? [results.config.seed];
}

/** A variant's finished runs, seed order (the single `result` of an older file counts as its config's seed). */
export function finishedRuns(results: CtMoeAblationResults, key: string): { seed: number; result: CtMoeVariantResult }[] {
  const v = results.variants[key];
  if (!v) return [];
  const runs = v.runs ?? (v.result ? [{ seed: results.config.seed, status: 'done' as const, result: v.result }] : []);
  return runs.filter((r) => r.status === 'done' && r.result).map((r) => ({ seed: r.seed, result: r.result! }));
}

/** Where one (variant, seed) run keeps its checkpoints and result.json. */
export function runDir(outDir: string, key: string, seed: number, primarySeed: number): string {
  return seed === primarySeed ? join(outDir, key) : join(outDir, key, `seed-${seed}`);
}

function checkSeeds(seeds: readonly number[], primary: number): void {
  if (seeds.length === 0) throw new RangeError('runAblation: seeds must name at least one seed');
  for (const s of seeds)
    if (!Number.isSafeInteger(s) || s < 0)
      throw new RangeError(`runAblation: seed ${s} is not an integer in [0, ${Number.MAX_SAFE_INTEGER}]`);
  const dup = seeds.find((s, i) => seeds.indexOf(s) !== i);
  if (dup !== undefined) throw new RangeError(`runAblation: seed ${dup} appears twice`);
  if (seeds[0] !== primary) throw new RangeError(`runAblation: the first seed (${seeds[0]}) must be the config's seed (${primary})`);
}

/** Train and evaluate the variants (resuming what was interrupted) on a CPU backend. */
export function runAblation(options: RunAblationOptions): CtMoeAblationResults {
  return runReadsSync(ablationRun(options));
}

/** runAblation on any backend (webgpu: each training step waits once, for its loss, CE and gradient norm). */
export function runAblationAsync(options: RunAblationOptions): Promise<CtMoeAblationResults> {
  return runReadsAsync(ablationRun(options));
}

function* ablationRun(options: RunAblationOptions): Reads<CtMoeAblationResults> {
  const cfg = experimentConfig(options.preset, options.overrides);
  const seeds = [...(options.seeds ?? [cfg.seed])];
  checkSeeds(seeds, cfg.seed);
  const variants = (options.variants ?? VARIANTS).map(resolveVariant);
  const keys = variants.map((v) => v.key);
  const dup = keys.find((k, i) => keys.indexOf(k) !== i);
  if (dup) throw new RangeError(`runAblation: variant key '${dup}' appears twice`);
  const par = options.dataParallel && options.dataParallel.size > 1 ? parallelLayout(options.dataParallel) : undefined;
  for (const v of variants) checkTrainingMemory({ ...cfg, ...v.overrides }, undefined, undefined, par); // before any allocation; one rank's share
  ensureDirSync(options.outDir);
  const data = options.data ?? loadCtMoeData(cfg.vocabSize);
  const N = cfg.numExperts;
  const results: CtMoeAblationResults = {
    format: 'moekit-ctmoe-ablation',
    version: 1,
    preset: typeof options.preset === 'string' ? options.preset : 'custom',
    config: cfg,
    precision: cfg.precision ?? 'fp32',
    order: keys,
    seeds,
    variants: Object.fromEntries(
      variants.map((v) => [
        v.key,
        {
          label: v.label,
          color: v.color,
          status: 'pending' as const,
          result: null,
          runs: seeds.map((seed) => ({ seed, status: 'pending' as const, result: null })),
        },
      ]),
    ),
    reference: { sEntropyUniform: Math.log(N - 1), sMaxUniform: 1 / (N - 1), routingEntropyUniform: Math.log(N), eigUniform: 1 / N },
    paperTable: PAPER_TABLE,
    notes: [
      `top_k = ${cfg.topK}${cfg.topK === 2 ? ': the renormalised 2x2 S sub-matrix is [[0,1],[1,0]] whatever S is, so message passing carries no information from S' : ' (>= 3: S shapes the message passing)'}.`,
      'Eigenspectrum: torch.linalg.eigvalsh semantics on the non-symmetric S (lower triangle mirrored), Jacobi in float64.',
      'Routing frequencies: train mode (dropout on), no grad, usage summed over layers and normalised (as the seed).',
      'Logged routing entropy, S entropy and S max are means over layers; per-layer values are kept alongside.',
      'Mixed validation batches: first half of the rows from code windows, second half from prose windows.',
      'Prose = State of the Union addresses (the seed used arXiv summaries); tokenizer = GPT-2 BPE truncated to vocabSize ranks.',
    ],
    wallSec: {},
    updatedAt: new Date().toISOString(),
  };
  const write = () => {
    if (options.dataParallel && !options.dataParallel.isWriter) return;
    results.updatedAt = new Date().toISOString();
    writeJsonAtomicSync(join(options.outDir, RESULTS_JSON), results);
  };
  run: for (const seed of seeds) {
    for (const v of variants) {
      const t0 = performance.now();
      const r = yield* variantRun({ ...cfg, seed }, v, data, {
        dir: runDir(options.outDir, v.key, seed, cfg.seed),
        onProgress: options.onProgress && ((p) => options.onProgress!({ ...p, seed })),
        stopAfterStep: options.stopAfterStep,
        onNonFinite: options.onNonFinite,
        keepCheckpoints: options.keepCheckpoints,
        dataParallel: options.dataParallel,
      });
      results.wallSec[v.key] = (results.wallSec[v.key] ?? 0) + (performance.now() - t0) / 1000;
      const entry = results.variants[v.key]!;
      if (r) {
        entry.runs![seeds.indexOf(seed)] = { seed, status: 'done', result: r };
        if (seed === cfg.seed) Object.assign(entry, { status: 'done', result: r });
      }
      write();
      if (!r) break run; // interrupted
    }
  }
  write();
  return results;
}
