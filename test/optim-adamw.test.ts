import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdamW, Generator, Parameter, type Tensor, fromArray, type AdamWStateDict } from '../src/index.js';
import { assertClose, forEachBackend } from './helpers/gradcheck.js';

function values(n: number, seed: number): number[] {
  const g = new Generator(seed);
  return Array.from({ length: n }, () => g.normal());
}

function param(v: number[], dtype: 'f32' | 'f64' = 'f64'): Parameter {
  return new Parameter(fromArray(dtype === 'f64' ? Float64Array.from(v) : Float32Array.from(v), [v.length]));
}

function setGrad(p: Tensor, v: number[]): void {
  p.grad = fromArray(p.dtype === 'f64' ? Float64Array.from(v) : Float32Array.from(v), [v.length]);
}

/** PyTorch's AdamW (torch/optim/adamw.py, single-tensor path), step by step in float64. */
class ReferenceAdamW {
  m: number[];
  v: number[];
  t = 0;
  constructor(
    public p: number[],
    readonly lr: number,
    readonly wd: number,
    readonly b1 = 0.9,
    readonly b2 = 0.999,
    readonly eps = 1e-8,
  ) {
    this.m = p.map(() => 0);
    this.v = p.map(() => 0);
  }
  step(g: number[]): void {
    this.t++;
    const bc1 = 1 - this.b1 ** this.t;
    const bc2 = 1 - this.b2 ** this.t;
    this.p = this.p.map((p, i) => {
      p = p * (1 - this.lr * this.wd);
      this.m[i] = this.m[i]! * this.b1 + (1 - this.b1) * g[i]!; // exp_avg.lerp_(grad, 1 - beta1)
      this.v[i] = this.v[i]! * this.b2 + (1 - this.b2) * g[i]! * g[i]!;
      const denom = Math.sqrt(this.v[i]!) / Math.sqrt(bc2) + this.eps;
      return p - (this.lr / bc1) * (this.m[i]! / denom);
    });
  }
}

forEachBackend('AdamW', () => {
  test('matches PyTorch formulas step by step, two groups with different lr / wd', () => {
    const a0 = values(6, 1);
    const b0 = values(4, 2);
    const a = param(a0);
    const b = param(b0);
    const frozen = param([1, 2]); // no grad: skipped
    const opt = new AdamW([{ params: [a, frozen] }, { params: [b], lr: 0.05, weightDecay: 0.3, betas: [0.8, 0.99] }], { lr: 0.01 });
    assert.equal(opt.paramGroups[0]!.weightDecay, 0.01);
    const ra = new ReferenceAdamW(a0, 0.01, 0.01);
    const rb = new ReferenceAdamW(b0, 0.05, 0.3, 0.8, 0.99);
    for (let step = 0; step < 5; step++) {
      const ga = values(6, 10 + step).map((v) => v * (step + 1));
      const gb = values(4, 20 + step);
      setGrad(a, ga);
      setGrad(b, gb);
      opt.step();
      ra.step(ga);
      rb.step(gb);
      assertClose(a.dataSync(), ra.p, 1e-14, 1e-12, `group 0 after step ${step + 1}`);
      assertClose(b.dataSync(), rb.p, 1e-14, 1e-12, `group 1 after step ${step + 1}`);
    }
    assert.deepEqual([...frozen.dataSync()], [1, 2]);
    assert.equal(opt.stepCount, 5);
  });

  test('f32 parameters follow the same formulas to f32 precision; lr changes take effect', () => {
    const p0 = values(8, 3);
    const p = param(p0, 'f32');
    const opt = new AdamW([p], { lr: 0.1, weightDecay: 0.05 });
    const r = new ReferenceAdamW(Array.from(Float32Array.from(p0)), 0.1, 0.05);
    for (let step = 0; step < 3; step++) {
      const g = Array.from(Float32Array.from(values(8, 30 + step)));
      setGrad(p, g);
      opt.step();
      r.step(g);
      assertClose(p.dataSync(), r.p, 1e-6, 1e-5, `step ${step + 1}`);
    }
    opt.paramGroups[0]!.lr = 0;
    const before = p.dataSync().slice();
    setGrad(p, values(8, 40));
    opt.step();
    assert.deepEqual(p.dataSync(), before, 'lr 0 leaves the parameter unchanged (decay is lr * wd)');
  });

  test('stateDict / loadStateDict resume bit-exactly', () => {
    const init = values(5, 7);
    const grads = Array.from({ length: 6 }, (_, s) => values(5, 50 + s));
    const makeOpt = (p: Parameter) => new AdamW([{ params: [p], weightDecay: 0.1 }], { lr: 0.02 });

    const straight = param(init);
    const o1 = makeOpt(straight);
    for (const g of grads) {
      setGrad(straight, g);
      o1.step();
    }

    const first = param(init);
    const o2 = makeOpt(first);
    for (const g of grads.slice(0, 3)) {
      setGrad(first, g);
      o2.step();
    }
    const saved: AdamWStateDict = o2.stateDict();
    const paramAtSnapshot = Array.from(first.dataSync());
    const savedM = saved.state[0]!.expAvg.dataSync().slice();
    setGrad(first, grads[3]!);
    o2.step(); // must not change the snapshot
    assert.deepEqual(saved.state[0]!.expAvg.dataSync(), savedM);

    // a fresh process: parameter restored from its checkpoint, optimiser from the state dict
    const resumed = param(paramAtSnapshot);
    const o3 = new AdamW([{ params: [resumed] }], { lr: 999 });
    o3.loadStateDict(saved);
    assert.equal(o3.paramGroups[0]!.lr, 0.02);
    assert.equal(o3.paramGroups[0]!.weightDecay, 0.1);
    assert.equal(o3.stepCount, 3);
    for (const g of grads.slice(3)) {
      setGrad(resumed, g);
      o3.step();
    }
    assert.deepEqual(resumed.dataSync(), straight.dataSync());
  });

  test('errors: shape mismatch in a state, duplicate parameters, bad hyper-parameters', () => {
    const p = param([1, 2, 3]);
    const opt = new AdamW([p], { lr: 0.1 });
    setGrad(p, [1, 1, 1]);
    opt.step();
    const sd = opt.stateDict();
    const other = new AdamW([param([1, 2])], { lr: 0.1 });
    assert.throws(() => other.loadStateDict(sd), /expAvg of parameter 0 has shape \[3\], the parameter has \[2\]/);
    assert.throws(() => new AdamW([{ params: [p] }, { params: [p] }], { lr: 1 }), /already appears/);
    assert.throws(() => new AdamW([p], { lr: -1 }), /lr must be a finite number >= 0 \(got -1\)/);
    assert.throws(() => new AdamW([p], { lr: 1, betas: [1, 0.9] }), /betas\[0\] must be in \[0, 1\) \(got 1\)/);
    assert.throws(() => new AdamW([], { lr: 1 }), /empty parameter list/);
  });
});
