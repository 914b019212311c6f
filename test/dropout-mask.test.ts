// dropout's mask comes from its generator's own draws (src/ops/dropout.ts fillMask inlines
// Generator.nextU32): the same values in the same order as generator.uniform(), and the
// generator left where that many draws leave it (its cached normal kept).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ones } from '../src/ops/creation.js';
import { dropout } from '../src/ops/dropout.js';
import { Generator } from '../src/tensor/random.js';

test('dropout mask: the generator draws, in order, and its state after them', () => {
  for (const [seed, p, dtype] of [
    [0, 0.1, 'f32'],
    [7, 0.5, 'f64'],
    [123456789, 0.9, 'f32'],
  ] as const) {
    const g = new Generator(seed);
    const twin = new Generator(seed);
    g.normal(); // leaves a cached second normal, which dropout must keep
    twin.normal();
    const n = 4099;
    const y = dropout(ones([n], { dtype }), p, true, g).dataSync();
    const keep = 1 / (1 - p);
    const round = dtype === 'f32' ? Math.fround : (v: number) => v;
    for (let i = 0; i < n; i++) assert.equal(y[i], round(twin.uniform() >= p ? keep : 0), `seed ${seed}, element ${i}`);
    assert.deepEqual(g.getState(), twin.getState());
    assert.equal(g.normal(), twin.normal());
  }
});
