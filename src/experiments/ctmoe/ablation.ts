// The CT-MoE ablation: every variant trained and evaluated in turn under <outDir>/<key>/,
// finished ones skipped, unfinished ones resumed from their last checkpoint; results.json
// (atomic) gathers what figures and the report need.
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
import { type CtMoeData, loadCtMoeData } from './data.js';
import { checkTrainingMemory } from './memory.js';
import type { NonFinitePolicy } from '../nonfinite.js';
import { type CtMoeProgress, type CtMoeVariantResult, variantRun } from './train.js';
import { type Reads, runReadsAsync, runReadsSync } from '../../tensor/reads.js';
import type { DataParallel } from '../../dist/data-parallel.js';

export const RESULTS_JSON = 'results.json';

export interface RunAblationOptions {
  preset: PresetName | CtMoeExperimentConfig;
  /** Config changes on top of the preset (e.g. { steps: 100 }). */
  overrides?: Partial<CtMoeExperimentConfig>;
  outDir: string;
  /** Default: the seed's four, in its order. */
  variants?: readonly (VariantName | VariantSpec)[];
  onProgress?: (p: CtMoeProgress) => void;
  /** Pre-loaded data (tests); default: the two domains at the config's vocab size. */
  data?: CtMoeData;
  /** Stop the variant being trained after this step, as if killed (tests). */
  stopAfterStep?: number;
  /** What a non-finite loss or gradient norm does (see RunVariantOptions.onNonFinite). */
  onNonFinite?: NonFinitePolicy;
  /** Checkpoints kept per variant (default 2). */
  keepCheckpoints?: number;
  /** Data parallelism over MPI ranks; only rank 0 writes. */
  dataParallel?: DataParallel;
}

export interface CtMoeAblationResults {
  format: 'moekit-ctmoe-ablation';
  version: 1;
  preset: string;
  config: CtMoeExperimentConfig;
  /** Variant keys in run (and figure) order. */
  order: string[];
  variants: Record<string, { label: string; color: string; status: 'done' | 'pending'; result: CtMoeVariantResult | null }>;
  /** Reference lines for the figures: uniform S entropy log(N-1), uniform S max 1/(N-1), routing entropy log N, eigenspectrum 1/N. */
  reference: { sEntropyUniform: number; sMaxUniform: number; routingEntropyUniform: number; eigUniform: number };
  /** The seed paper's table (code / arxiv / mixed PPL) for comparison; its prose domain is arXiv. */
  paperTable: Record<string, { code: number; arxiv: number; mixed: number }>;
  notes: string[];
  /** Wall-clock seconds spent in this call, per variant (train + eval, this session only). */
  wallSec: Record<string, number>;
  updatedAt: string;
}

export const PAPER_TABLE = {
  StandardMoE: { code: 25.5, arxiv: 19.0, mixed: 22.3 },
  'CT-MoE-NoCollab': { code: 26.4, arxiv: 18.9, mixed: 22.7 },
  'CT-MoE-NoRouting': { code: 20.0, arxiv: 17.7, mixed: 19.0 },
  'CT-MoE-Full': { code: 19.7, arxiv: 17.5, mixed: 18.7 },
};

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
  const variants = (options.variants ?? VARIANTS).map(resolveVariant);
  const keys = variants.map((v) => v.key);
  const dup = keys.find((k, i) => keys.indexOf(k) !== i);
  if (dup) throw new RangeError(`runAblation: variant key '${dup}' appears twice`);
  for (const v of variants) checkTrainingMemory({ ...cfg, ...v.overrides }); // before any allocation
  ensureDirSync(options.outDir);
  const data = options.data ?? loadCtMoeData(cfg.vocabSize);
  const N = cfg.numExperts;
  const results: CtMoeAblationResults = {
    format: 'moekit-ctmoe-ablation',
    version: 1,
    preset: typeof options.preset === 'string' ? options.preset : 'custom',
    config: cfg,
    order: keys,
    variants: Object.fromEntries(
      variants.map((v) => [v.key, { label: v.label, color: v.color, status: 'pending' as const, result: null }]),
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
  for (const v of variants) {
    const t0 = performance.now();
    const r = yield* variantRun(cfg, v, data, {
      dir: join(options.outDir, v.key),
      onProgress: options.onProgress,
      stopAfterStep: options.stopAfterStep,
      onNonFinite: options.onNonFinite,
      keepCheckpoints: options.keepCheckpoints,
      dataParallel: options.dataParallel,
    });
    results.wallSec[v.key] = (performance.now() - t0) / 1000;
    if (r) results.variants[v.key] = { label: v.label, color: v.color, status: 'done', result: r };
    write();
    if (!r) break; // interrupted
  }
  write();
  return results;
}
