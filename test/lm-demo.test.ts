// The demo job on real text: the loss falls well below the unigram entropy, bit-reproducibly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TINY_LM_DEFAULTS, trainTinyLm, unigramEntropy } from '../src/experiments/tiny-lm.js';

const config = {
  ...TINY_LM_DEFAULTS,
  vocabSize: 512,
  dModel: 64,
  nHead: 4,
  nLayer: 2,
  seqLen: 32,
  batchSize: 16,
  steps: 300,
  warmup: 20,
  lr: 1e-2,
  evalBatches: 10,
};

test('unigramEntropy is the Shannon entropy of token frequencies', () => {
  // p = [1/2, 1/4, 1/4] -> H = 1.5 ln 2
  assert.ok(Math.abs(unigramEntropy(new Int32Array([0, 0, 1, 2]), 4) - 1.5 * Math.LN2) < 1e-12);
});

test('a tiny GPT on effect + State of the Union text beats the unigram entropy, reproducibly', () => {
  const a = trainTinyLm(config);
  const mean = (xs: number[]) => xs.reduce((p, x) => p + x, 0) / xs.length;
  const start = mean(a.losses.slice(0, 5));
  const end = mean(a.losses.slice(-25));
  assert.ok(start > a.unigramEntropy, `the first losses (${start}) should be above the unigram entropy (${a.unigramEntropy})`);
  assert.ok(
    end < a.unigramEntropy - 0.5,
    `the final training loss (${end}) should be well below the unigram entropy (${a.unigramEntropy})`,
  );
  assert.ok(
    a.valLoss < a.unigramEntropy - 0.4,
    `the validation loss (${a.valLoss}) should be well below the unigram entropy (${a.unigramEntropy})`,
  );

  const b = trainTinyLm(config);
  assert.deepEqual(b.losses, a.losses, 'same seed, same losses, bit for bit');
  assert.equal(b.valLoss, a.valLoss);
});

test('a diverging demo run (lr 1e6) stops with the step and the first non-finite tensor instead of logging NaN', () => {
  assert.throws(
    () => trainTinyLm({ ...config, steps: 40, warmup: 0, lr: 1e6, evalBatches: 1 }),
    /^NonFiniteError: tiny GPT: step \d+: loss (NaN|-?Infinity), gradient norm \S+; first non-finite: (parameter|gradient of) '[\w.]+'\[\d+\] = /,
  );
});
