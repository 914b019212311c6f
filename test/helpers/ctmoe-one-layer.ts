// A one-layer micro CT-MoE run (checkpoint every 2 steps) on random tokens, and temporary run
// folders removed after the file's tests: what the checkpoint and non-finite tests share.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { type CtMoeData, type CtMoeExperimentConfig, experimentConfig } from '../../src/experiments/ctmoe/index.js';
import { Generator } from '../../src/tensor/random.js';

export const ONE_LAYER_MICRO: CtMoeExperimentConfig = experimentConfig('tiny', {
  vocabSize: 256,
  seqLen: 8,
  dModel: 16,
  nHead: 2,
  nLayer: 1,
  numExperts: 4,
  topK: 3,
  batchSize: 4,
  steps: 8,
  warmup: 2,
  logEvery: 4,
  evalBatches: 1,
  freqBatches: 1,
  checkpointEvery: 2,
});

/** Tokens in [0, 100) for training and 'code', [120, 220) for 'prose'. */
export function randomTokens(): CtMoeData {
  const g = new Generator(7);
  const tokens = (n: number, lo: number) => Int32Array.from({ length: n }, () => lo + g.int(100));
  return { vocabSize: 256, train: tokens(1000, 0), val: { code: tokens(100, 0), prose: tokens(100, 120) } };
}

/** A fresh temporary folder per call (prefix `prefix`), all removed after the calling file's tests. */
export function tempDirs(prefix: string): () => string {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
}
