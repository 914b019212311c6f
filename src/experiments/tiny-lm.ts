// The demo job: a tiny GPT trained on real text (code + prose from npm packages), showing the
// loss fall below the unigram entropy of the text. Deterministic for a given seed.
import { BatchLoader, TokenWindows, evalBatches } from '../data/batches.js';
import { batchTensors } from './batch-tensors.js';
import { BpeTokenizer } from '../data/tokenizer.js';
import { loadDomainTokens } from '../data/token-cache.js';
import type { Domain } from '../data/corpora.js';
import { GPT } from '../nn/gpt.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { NonFiniteError, firstNonFinite, stepIsFinite } from './nonfinite.js';
import { LRScheduler, warmupCosine } from '../optim/schedule.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator, manualSeed } from '../tensor/random.js';

export interface TinyLmConfig {
  vocabSize: number;
  seqLen: number;
  dModel: number;
  nHead: number;
  nLayer: number;
  batchSize: number;
  steps: number;
  lr: number;
  warmup: number;
  seed: number;
  domains: Domain[];
  /** Validation batches evaluated at the end. */
  evalBatches: number;
}

export const TINY_LM_DEFAULTS: TinyLmConfig = {
  vocabSize: 1024,
  seqLen: 64,
  dModel: 64,
  nHead: 4,
  nLayer: 2,
  batchSize: 16,
  steps: 300,
  lr: 3e-3,
  warmup: 30,
  seed: 42,
  domains: ['code', 'prose'],
  evalBatches: 20,
};

export interface TinyLmStep {
  step: number;
  loss: number;
  lr: number;
  tokensPerSec: number;
}

export interface TinyLmResult {
  config: TinyLmConfig;
  losses: number[];
  /** Entropy (nats/token) of the training tokens' unigram distribution: a model that ignores context can do no better. */
  unigramEntropy: number;
  valLoss: number;
  trainTokens: number;
  seconds: number;
}

/** Shannon entropy (nats) of the token frequency distribution. */
export function unigramEntropy(tokens: Int32Array, vocabSize: number): number {
  const counts = new Float64Array(vocabSize);
  for (let i = 0; i < tokens.length; i++) counts[tokens[i]!]!++;
  let h = 0;
  for (const c of counts) {
    if (c > 0) {
      const p = c / tokens.length;
      h -= p * Math.log(p);
    }
  }
  return h;
}

function concatTokens(parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function trainTinyLm(config: TinyLmConfig, onStep?: (s: TinyLmStep) => void): TinyLmResult {
  const t0 = performance.now();
  const tok = BpeTokenizer.gpt2(config.vocabSize);
  const train = concatTokens(config.domains.map((d) => loadDomainTokens(d, 'train', tok)));
  const val = concatTokens(config.domains.map((d) => loadDomainTokens(d, 'val', tok)));

  manualSeed(config.seed);
  const model = new GPT({
    vocabSize: config.vocabSize,
    seqLen: config.seqLen,
    dModel: config.dModel,
    nHead: config.nHead,
    nLayer: config.nLayer,
    dropout: 0,
  });
  const optimizer = new AdamW(model.parameters(), { lr: config.lr, weightDecay: 0.1, betas: [0.9, 0.95] });
  const scheduler = new LRScheduler(optimizer, warmupCosine({ warmup: config.warmup, total: config.steps, floor: 0.1 }));
  const dataRng = new Generator(config.seed + 1);
  const loader = new BatchLoader(new TokenWindows(train, config.seqLen), {
    batchSize: config.batchSize,
    random: () => dataRng.uniform(),
  });

  const losses: number[] = [];
  let last = performance.now();
  for (let step = 1; step <= config.steps; step++) {
    const { input, target } = batchTensors(loader.next());
    model.zeroGrad();
    const loss = model.loss(input, target);
    loss.backward();
    const norm = clipGradNorm(model.parameters(), 1.0);
    const value = loss.item();
    if (!stepIsFinite(value, norm)) {
      const first = firstNonFinite(model.namedParameters()) ?? 'none found (the loss alone)';
      throw new NonFiniteError(
        'tiny GPT',
        step,
        `tiny GPT: step ${step}: loss ${value}, gradient norm ${norm}; first non-finite: ${first}; training stopped`,
      );
    }
    optimizer.step();
    scheduler.step();
    losses.push(value);
    const now = performance.now();
    onStep?.({
      step,
      loss: value,
      lr: optimizer.paramGroups[0]!.lr,
      tokensPerSec: (config.batchSize * config.seqLen) / ((now - last) / 1000),
    });
    last = now;
  }

  model.eval();
  let sum = 0;
  let count = 0;
  noGrad(() => {
    for (const b of evalBatches(new TokenWindows(val, config.seqLen), {
      batchSize: config.batchSize,
      maxBatches: config.evalBatches,
      dropLast: true,
    })) {
      const { input, target } = batchTensors(b);
      sum += model.loss(input, target).item();
      count++;
    }
  });
  return {
    config,
    losses,
    unigramEntropy: unigramEntropy(train, config.vocabSize),
    valLoss: sum / count,
    trainTokens: train.length,
    seconds: (performance.now() - t0) / 1000,
  };
}
