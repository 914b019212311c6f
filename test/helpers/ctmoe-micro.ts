// A micro CT-MoE ablation config and synthetic data, for tests that need a real run fast.
import { type CtMoeData, type CtMoeExperimentConfig, experimentConfig } from '../../src/experiments/ctmoe/index.js';
import { Generator } from '../../src/tensor/random.js';

export const MICRO_OVERRIDES: Partial<CtMoeExperimentConfig> = {
  vocabSize: 256,
  seqLen: 8,
  dModel: 16,
  nHead: 2,
  nLayer: 2,
  numExperts: 4,
  topK: 3,
  batchSize: 4,
  lr: 3e-3,
  steps: 8,
  warmup: 2,
  logEvery: 4,
  evalBatches: 2,
  freqBatches: 2,
  checkpointEvery: 4,
};

export const MICRO: CtMoeExperimentConfig = experimentConfig('tiny', MICRO_OVERRIDES);

/** Tokens in [0, 100) for 'code' and [120, 220) for 'prose', every fifth one fixed. */
export function synthData(): CtMoeData {
  const g = new Generator(7);
  const tokens = (n: number, lo: number) => Int32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? lo : lo + g.int(100)));
  return { vocabSize: 256, train: tokens(2000, 0), val: { code: tokens(200, 0), prose: tokens(200, 120) } };
}
