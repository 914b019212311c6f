// The run the kill-point test interrupts (shared by the test and its child process).
import { experimentConfig, type CtMoeData, type CtMoeExperimentConfig } from '../../src/experiments/ctmoe/index.js';
import { Generator } from '../../src/tensor/random.js';

export const KILL_TEST_VARIANT = 'CT-MoE-Full';
export const KILL_TEST_CONFIG: CtMoeExperimentConfig = experimentConfig('tiny', {
  vocabSize: 256,
  seqLen: 8,
  dModel: 16,
  nHead: 2,
  nLayer: 1,
  numExperts: 4,
  topK: 3,
  batchSize: 4,
  steps: 24,
  warmup: 2,
  logEvery: 6,
  evalBatches: 1,
  freqBatches: 1,
  checkpointEvery: 1,
});

export function killTestData(): CtMoeData {
  const g = new Generator(11);
  const tokens = (n: number, lo: number) => Int32Array.from({ length: n }, () => lo + g.int(100));
  return { vocabSize: 256, train: tokens(1000, 0), val: { code: tokens(100, 0), prose: tokens(100, 120) } };
}
