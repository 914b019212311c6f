// The CT-MoE ablation: experiment config (presets `paper` and `tiny`) and the variants.
import { ConfigError, bool, int, num, oneOf, or, record } from '../../moe/validate.js';
import { PRECISIONS, type Precision } from './precision.js';

export interface CtMoeExperimentConfig {
  // tokenizer / model
  /** GPT-2 BPE truncated to this many ranks (the seed trains a 16000 SentencePiece BPE). */
  vocabSize: number;
  seqLen: number;
  dModel: number;
  nHead: number;
  nLayer: number;
  numExperts: number;
  topK: number;
  dropout: number;
  // topology
  routingScale: number;
  collabScale: number;
  sTemp: number;
  /** S_raw's learning rate is lr x sLrScale (and it has no weight decay). */
  sLrScale: number;
  lbWeight: number;
  // training
  batchSize: number;
  lr: number;
  weightDecay: number;
  betas: [number, number];
  gradClip: number;
  /** Optimiser steps; null: `epochs` passes over the training windows (the seed trains 10 epochs). */
  steps: number | null;
  epochs: number;
  warmup: number;
  /** Lowest lr multiplier after warmup (the seed's 0.05). */
  lrFloor: number;
  /** Seed of every variant (the seed's 42): init, dropout and data order. */
  seed: number;
  logEvery: number;
  /** Mixed-validation batches for the PPL logged during training and the final domain PPLs (the seed's 150). */
  evalBatches: number;
  /** Batches per domain for the final routing frequencies (the seed's 100, in train mode). */
  freqBatches: number;
  /** Write a checkpoint every this many steps (and at the end of training). */
  checkpointEvery: number;
  expertCompute: 'sparse' | 'dense';
  /** Training precision (precision.ts); absent: fp32, and a config without it reads as before. */
  precision?: Precision;
}

/** The seed's sizes (spec/seed-systems.md section 2); vocab is the GPT-2 BPE truncation. */
export const PAPER_PRESET: CtMoeExperimentConfig = {
  vocabSize: 16000,
  seqLen: 256,
  dModel: 512,
  nHead: 8,
  nLayer: 6,
  numExperts: 16,
  topK: 2,
  dropout: 0.1,
  routingScale: 1.5,
  collabScale: 1.0,
  sTemp: 1.0,
  sLrScale: 100,
  lbWeight: 0.01,
  batchSize: 32,
  lr: 2e-4,
  weightDecay: 0.1,
  betas: [0.9, 0.999],
  gradClip: 1.0,
  steps: null,
  epochs: 10,
  warmup: 600,
  lrFloor: 0.05,
  seed: 42,
  logEvery: 200,
  evalBatches: 150,
  freqBatches: 100,
  checkpointEvery: 1000,
  expertCompute: 'sparse',
};

/**
 * Four variants with evaluation in about 8-10 minutes on the 2-core project machine.
 * top_k = 3 (not the seed's 2) so that S reaches the message passing: at k = 2 the
 * renormalised 2x2 sub-matrix is [[0,1],[1,0]] whatever S is. The lr is raised for the short
 * run; everything else keeps the seed's values.
 */
export const TINY_PRESET: CtMoeExperimentConfig = {
  ...PAPER_PRESET,
  vocabSize: 2048,
  seqLen: 64,
  dModel: 128,
  nHead: 4,
  nLayer: 2,
  numExperts: 8,
  topK: 3,
  dropout: 0.1,
  batchSize: 16,
  lr: 2e-3,
  steps: 500,
  warmup: 50,
  logEvery: 25,
  evalBatches: 16,
  freqBatches: 8,
  checkpointEvery: 100,
};

/**
 * Between tiny and paper: the paper's N = 16 experts and top-2, 4 layers, sequences of 128 over a
 * 4096-token vocabulary; sized so that all four variants under 3 seeds (12 runs) finish within
 * an hour on 2 cores (measured: ~27 minutes quiet at top-3; README: the `small` preset).
 * `--set topK=3` lets S reach the message passing (see TINY_PRESET).
 */
export const SMALL_PRESET: CtMoeExperimentConfig = {
  ...PAPER_PRESET,
  vocabSize: 4096,
  seqLen: 128,
  dModel: 128,
  nHead: 4,
  nLayer: 4,
  numExperts: 16,
  topK: 2,
  dropout: 0.1,
  batchSize: 16,
  lr: 2e-3,
  steps: 400,
  warmup: 40,
  logEvery: 100,
  evalBatches: 16,
  freqBatches: 8,
  checkpointEvery: 100,
};

export const PRESETS = { paper: PAPER_PRESET, small: SMALL_PRESET, tiny: TINY_PRESET } as const;
export type PresetName = keyof typeof PRESETS;

/** Which CT-MoE parts a variant has. */
export interface VariantFlags {
  /** false: Standard MoE (the seed's is_baseline): no S at all. */
  useTopology: boolean;
  useGraphRouting: boolean;
  useGraphCollab: boolean;
}

export interface VariantSpec {
  /** Directory and results key ([A-Za-z0-9_.-]+). */
  key: string;
  label: string;
  flags: VariantFlags;
  /** Figure colour (the seed's palette for its four). */
  color: string;
  /** Per-variant config changes (e.g. topK) on top of the preset. */
  overrides?: Partial<CtMoeExperimentConfig>;
}

/** The seed's four, in its order. */
export const VARIANTS: readonly VariantSpec[] = [
  {
    key: 'CT-MoE-Full',
    label: 'CT-MoE (Full)',
    flags: { useTopology: true, useGraphRouting: true, useGraphCollab: true },
    color: '#1D9E75',
  },
  {
    key: 'StandardMoE',
    label: 'Standard MoE',
    flags: { useTopology: false, useGraphRouting: false, useGraphCollab: false },
    color: '#888780',
  },
  {
    key: 'CT-MoE-NoCollab',
    label: 'CT-MoE (No Collaboration)',
    flags: { useTopology: true, useGraphRouting: true, useGraphCollab: false },
    color: '#378ADD',
  },
  {
    key: 'CT-MoE-NoRouting',
    label: 'CT-MoE (No Routing)',
    flags: { useTopology: true, useGraphRouting: false, useGraphCollab: true },
    color: '#D85A30',
  },
];

export type VariantName = 'CT-MoE-Full' | 'StandardMoE' | 'CT-MoE-NoCollab' | 'CT-MoE-NoRouting';

/** A named variant or a custom one; validated. */
export function resolveVariant(v: VariantName | VariantSpec): VariantSpec {
  if (typeof v === 'string') {
    const found = VARIANTS.find((x) => x.key === v);
    if (!found) throw new ConfigError('variant', v, `one of ${VARIANTS.map((x) => `'${x.key}'`).join(', ')} or a VariantSpec object`);
    return found;
  }
  const r = record('variant', v, ['key', 'label', 'flags', 'color', 'overrides']);
  if (typeof r['key'] !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(r['key']))
    throw new ConfigError('variant.key', r['key'], 'a non-empty string of [A-Za-z0-9_.-]');
  const f = record('variant.flags', r['flags'], ['useTopology', 'useGraphRouting', 'useGraphCollab']);
  const flags: VariantFlags = {
    useTopology: bool('variant.flags.useTopology', f['useTopology']),
    useGraphRouting: bool('variant.flags.useGraphRouting', f['useGraphRouting']),
    useGraphCollab: bool('variant.flags.useGraphCollab', f['useGraphCollab']),
  };
  if (!flags.useTopology && (flags.useGraphRouting || flags.useGraphCollab)) {
    throw new ConfigError('variant.flags', flags, 'useGraphRouting and useGraphCollab false when useTopology is false');
  }
  return {
    key: r['key'],
    label: typeof r['label'] === 'string' ? r['label'] : r['key'],
    flags,
    color: typeof r['color'] === 'string' ? r['color'] : '#444441',
    overrides: v.overrides,
  };
}

const FIELDS = [...Object.keys(PAPER_PRESET), 'precision'] as (keyof CtMoeExperimentConfig)[];

/** The integer-valued fields (the CLI's --set reads them as decimal integers). */
export const INTEGER_FIELDS: readonly (keyof CtMoeExperimentConfig)[] = [
  'vocabSize',
  'seqLen',
  'dModel',
  'nHead',
  'nLayer',
  'numExperts',
  'topK',
  'batchSize',
  'steps',
  'epochs',
  'warmup',
  'seed',
  'logEvery',
  'evalBatches',
  'freqBatches',
  'checkpointEvery',
];
/** Bound of counts (steps, intervals, batches) and sizes; memory.ts then checks the sizes against the machine. */
const COUNT_MAX = 1e9;
const SIZE_MAX = 1 << 24;

/** Validate a full config (e.g. a preset with overrides); names field, value and range on failure. */
export function validateExperimentConfig(c: CtMoeExperimentConfig, field = 'ctMoeExperiment'): CtMoeExperimentConfig {
  const v = record(field, c, FIELDS);
  const f = (k: string) => `${field}.${k}`;
  int(f('vocabSize'), v['vocabSize'], 256, 50257);
  int(f('seqLen'), v['seqLen'], 1, SIZE_MAX);
  const D = int(f('dModel'), v['dModel'], 1, SIZE_MAX);
  const H = int(f('nHead'), v['nHead'], 1, SIZE_MAX);
  if (D % H !== 0) throw new ConfigError(f('nHead'), H, `a divisor of dModel = ${D}`);
  int(f('nLayer'), v['nLayer'], 1, SIZE_MAX);
  const N = int(f('numExperts'), v['numExperts'], 2, 1 << 16);
  int(f('topK'), v['topK'], 1, N, `at most numExperts = ${N}`);
  num(f('dropout'), v['dropout'], { min: 0, max: 1, maxOpen: true });
  num(f('routingScale'), v['routingScale']);
  num(f('collabScale'), v['collabScale']);
  num(f('sTemp'), v['sTemp'], { min: 0, minOpen: true });
  num(f('sLrScale'), v['sLrScale'], { min: 0 });
  num(f('lbWeight'), v['lbWeight'], { min: 0 });
  int(f('batchSize'), v['batchSize'], 1, SIZE_MAX);
  num(f('lr'), v['lr'], { min: 0 });
  num(f('weightDecay'), v['weightDecay'], { min: 0 });
  const betas = v['betas'];
  if (!Array.isArray(betas) || betas.length !== 2) throw new ConfigError(f('betas'), betas, 'a pair [beta1, beta2] in [0, 1)');
  num(`${f('betas')}[0]`, betas[0], { min: 0, max: 1, maxOpen: true });
  num(`${f('betas')}[1]`, betas[1], { min: 0, max: 1, maxOpen: true });
  num(f('gradClip'), v['gradClip'], { min: 0, minOpen: true });
  if (v['steps'] !== null) int(f('steps'), v['steps'], 1, COUNT_MAX);
  int(f('epochs'), v['epochs'], 1, COUNT_MAX);
  int(f('warmup'), v['warmup'], 0, COUNT_MAX);
  num(f('lrFloor'), v['lrFloor'], { min: 0, max: 1 });
  int(f('seed'), v['seed'], 0, Number.MAX_SAFE_INTEGER);
  int(f('logEvery'), v['logEvery'], 1, COUNT_MAX);
  int(f('evalBatches'), v['evalBatches'], 1, COUNT_MAX);
  int(f('freqBatches'), v['freqBatches'], 1, COUNT_MAX);
  int(f('checkpointEvery'), v['checkpointEvery'], 1, COUNT_MAX);
  oneOf(f('expertCompute'), or(v['expertCompute'], 'sparse'), ['sparse', 'dense'] as const);
  if (v['precision'] !== undefined) oneOf(f('precision'), v['precision'], PRECISIONS);
  return c;
}

/** A preset (by name or as a config) with overrides, validated. */
export function experimentConfig(
  preset: PresetName | CtMoeExperimentConfig,
  overrides: Partial<CtMoeExperimentConfig> = {},
): CtMoeExperimentConfig {
  let base: CtMoeExperimentConfig;
  if (typeof preset === 'string') {
    const p = (PRESETS as Record<string, CtMoeExperimentConfig>)[preset];
    if (!p)
      throw new ConfigError(
        'preset',
        preset,
        `one of ${Object.keys(PRESETS)
          .map((k) => `'${k}'`)
          .join(', ')}`,
      );
    base = p;
  } else base = preset;
  // a copy of betas (the preset's array is shared); anything but an array goes to the validator as it is
  const betas = overrides.betas === undefined ? [...base.betas] : Array.isArray(overrides.betas) ? [...overrides.betas] : overrides.betas;
  return validateExperimentConfig({ ...base, ...overrides, betas: betas as [number, number] });
}
