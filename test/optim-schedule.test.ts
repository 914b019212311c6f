import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AdamW, LRScheduler, Parameter, warmupCosine, zeros } from '../src/index.js';

// CT-MoE's lr_mult, written out independently
function ctMoe(s: number, warmup: number, total: number, floor: number): number {
  if (s < warmup) return s / warmup;
  const progress = (s - warmup) / Math.max(total - warmup, 1);
  return Math.max(floor, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

describe('warmupCosine / LRScheduler', () => {
  test('multiplier matches the closed form at every step', () => {
    const f = warmupCosine({ warmup: 10, total: 100, floor: 0.05 });
    for (let s = 0; s <= 120; s++) assert.equal(f(s), ctMoe(s, 10, 100, 0.05), `step ${s}`);
    assert.equal(f(0), 0, 'step 0 runs at lr 0 (LambdaLR)');
    assert.equal(f(5), 0.5);
    assert.equal(f(10), 1);
    assert.ok(Math.abs(f(55) - 0.5) < 1e-15);
    assert.equal(f(100), 0.05, 'the floor holds at the end');
    const noWarm = warmupCosine({ warmup: 0, total: 4 });
    assert.deepEqual(
      [0, 1, 2, 3, 4].map(noWarm),
      [0, 1, 2, 3, 4].map((s) => ctMoe(s, 0, 4, 0)),
    );
    assert.equal(noWarm(0), 1);
    assert.throws(() => warmupCosine({ warmup: -1, total: 10 }), /warmup must be an integer >= 0 \(got -1\)/);
    assert.throws(() => warmupCosine({ warmup: 1, total: 10, floor: 2 }), /floor must be in \[0, 1\] \(got 2\)/);
  });

  test('scheduler sets every group lr = base lr * mult(step); state round trip', () => {
    const opt = new AdamW([{ params: [new Parameter(zeros([1]))] }, { params: [new Parameter(zeros([1]))], lr: 0.5 }], { lr: 0.1 });
    const f = warmupCosine({ warmup: 3, total: 10, floor: 0.05 });
    const sched = new LRScheduler(opt, f);
    assert.deepEqual(sched.lastLr, [0, 0]);
    for (let s = 1; s <= 12; s++) {
      sched.step();
      assert.deepEqual(sched.lastLr, [0.1 * ctMoe(s, 3, 10, 0.05), 0.5 * ctMoe(s, 3, 10, 0.05)]);
    }
    assert.deepEqual(sched.state, { step: 12, baseLrs: [0.1, 0.5] });
    const state = sched.state;
    const opt2 = new AdamW([{ params: [new Parameter(zeros([1]))] }, { params: [new Parameter(zeros([1]))] }], { lr: 7 });
    const s2 = new LRScheduler(opt2, f);
    s2.loadState(state);
    assert.deepEqual(s2.lastLr, sched.lastLr);
    s2.step();
    sched.step();
    assert.deepEqual(s2.lastLr, sched.lastLr);
  });
});
