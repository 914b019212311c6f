import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AdamW,
  GPT,
  Generator,
  Linear,
  Module,
  type Tensor,
  clipGradNorm,
  fromArray,
  manualSeed,
  noGrad,
  tensor,
  type GPTConfig,
} from '../src/index.js';
import { assertClose, forEachBackend } from './helpers/gradcheck.js';

const tiny: GPTConfig = { vocabSize: 64, seqLen: 16, dModel: 32, nHead: 4, nLayer: 2 };

function randomIds(B: number, T: number, V: number, seed: number, avoid = -1): Tensor {
  const g = new Generator(seed);
  const a = new Int32Array(B * T);
  for (let i = 0; i < a.length; i++) {
    do a[i] = g.int(V);
    while (a[i] === avoid);
  }
  return fromArray(a, [B, T]);
}

/** Trains the tiny GPT on a repeating 23-token pattern; returns the loss of every step. */
function train(seed: number, steps: number): number[] {
  manualSeed(seed);
  const model = new GPT({ ...tiny, dropout: 0.1 });
  const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0.01 });
  const g = new Generator(seed + 1);
  const pattern = Array.from({ length: 23 }, () => g.int(tiny.vocabSize));
  const stream = Array.from({ length: 2000 }, (_, i) => pattern[i % pattern.length]!);
  const [B, T] = [8, tiny.seqLen];
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const x = new Int32Array(B * T);
    const y = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const off = g.int(stream.length - T - 1);
      for (let t = 0; t < T; t++) {
        x[b * T + t] = stream[off + t]!;
        y[b * T + t] = stream[off + t + 1]!;
      }
    }
    const loss = model.loss(fromArray(x, [B, T]), fromArray(y, [B, T]));
    losses.push(loss.item());
    opt.zeroGrad();
    loss.backward();
    clipGradNorm(model.parameters(), 1);
    opt.step();
  }
  return losses;
}

forEachBackend('GPT', () => {
  test('forward shape, init statistics, loss at init ≈ ln V', () => {
    manualSeed(0);
    const model = new GPT(tiny);
    const ids = randomIds(4, 12, 64, 1);
    const logits = model.forward(ids);
    assert.deepEqual(logits.shape, [4, 12, 64]);
    const w = Array.from(model.blocks[0]!.attn.qkv.weight.dataSync());
    const std = Math.sqrt(w.reduce((p, v) => p + v * v, 0) / w.length);
    assert.ok(Math.abs(std - 0.02) < 0.002, `qkv weight std ${std}`);
    assert.ok(model.blocks[0]!.attn.qkv.bias!.dataSync().every((v) => v === 0));
    assert.ok(model.lnF.weight!.dataSync().every((v) => v === 1));
    // targets never equal the input token (the tied head favours it slightly)
    const targets = fromArray(ids.dataSync().map((v) => (v + 17) % 64) as Int32Array, [4, 12]);
    const loss = model.loss(ids, targets).item();
    assert.ok(Math.abs(loss - Math.log(64)) < 0.05, `loss at init ${loss} vs ln 64 = ${Math.log(64)}`);
    assert.equal(model.lmHead, null);
    assert.equal(model.numParameters(), 64 * 32 + 16 * 32 + 2 * (4 * 32 + 3 * 32 * 33 + 32 * 33 + 128 * 33 + 32 * 129) + 2 * 32);
  });

  test('tied head: rows of tokens absent from the batch get their grad from the head alone', () => {
    manualSeed(5);
    const model = new GPT({ ...tiny, nLayer: 1 });
    const absent = 7;
    const ids = randomIds(2, 8, 64, 2, absent);
    const targets = randomIds(2, 8, 64, 3, absent);
    model.loss(ids, targets).backward();
    const grad = model.wte.weight.grad!.dataSync();
    // d loss / d wte[v] through logits = h·wte[v]ᵀ: mean over positions of softmax_v * h
    const { h, p } = noGrad(() => {
      const hidden = model.hidden(ids);
      return { h: hidden.dataSync(), p: model.forward(ids).softmax(-1).dataSync() };
    });
    const [N, D, V] = [16, 32, 64];
    const expected = new Float64Array(D);
    for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) expected[d]! += (p[n * V + absent]! * h[n * D + d]!) / N;
    assertClose(grad.subarray(absent * D, (absent + 1) * D), expected, 1e-6, 1e-4, 'wte grad row');
    assert.ok(expected.some((v) => Math.abs(v) > 1e-5));
  });

  test('untied head and custom FFN', () => {
    class Twice extends Module {
      readonly lin: Linear;
      constructor(d: number) {
        super();
        this.lin = new Linear(d, d, { bias: false });
      }
      forward(x: Tensor): Tensor {
        return this.lin.forward(x).mul(2);
      }
    }
    manualSeed(1);
    const model = new GPT({ ...tiny, tieEmbeddings: false, ffn: () => new Twice(32) });
    assert.ok(model.lmHead instanceof Linear);
    const names = model.namedParameters().map(([n]) => n);
    assert.ok(names.includes('blocks.1.ffn.lin.weight'));
    assert.equal(names.at(-1), 'lmHead.weight');
    // the custom FFN keeps its own (kaiming) init: |w| reaches well past 3 * 0.02
    const w = (model.blocks[0]!.ffn as Twice).lin.weight.dataSync();
    assert.ok(w.some((v) => Math.abs(v) > 0.1));
    assert.deepEqual(model.forward(tensor([[1, 2, 3]], { dtype: 'i32' })).shape, [1, 3, 64]);
  });

  test('config and input validation', () => {
    assert.throws(() => new GPT({ ...tiny, dModel: 30 }), /GPTConfig\.dModel \(30\) must be divisible by GPTConfig\.nHead \(4\)/);
    assert.throws(() => new GPT({ ...tiny, nLayer: 0 }), /GPTConfig\.nLayer must be an integer >= 1 \(got 0\)/);
    assert.throws(() => new GPT({ ...tiny, vocabSize: 2.5 }), /GPTConfig\.vocabSize must be an integer >= 1 \(got 2.5\)/);
    assert.throws(() => new GPT({ ...tiny, dropout: -0.1 }), /GPTConfig\.dropout must be in \[0, 1\) \(got -0.1\)/);
    const model = new GPT({ ...tiny, nLayer: 1 });
    assert.throws(() => model.forward(randomIds(1, 17, 64, 1)), /T=17 exceeds GPTConfig\.seqLen=16/);
    assert.throws(() => model.forward(tensor([[1, 64]], { dtype: 'i32' })), /token id 64 at flat position 1 is outside \[0, 64\)/);
    assert.throws(() => model.forward(tensor([[1, 2]])), /ids must have dtype i32/);
  });

  test('tiny GPT learns a repeating sequence in 60 steps; same seed, bit-identical losses', () => {
    const a = train(1, 60);
    const first = a[0]!;
    const last = a.slice(-5).reduce((p, v) => p + v, 0) / 5;
    assert.ok(last < 0.5 * first, `loss ${first} -> ${last}`);
    const b = train(1, 60);
    assert.deepEqual(b, a);
  });
});
