// MoELayerOptions.checkFiniteInput (issue 27): one NaN token makes every router-weight
// gradient NaN; with the check on, the forward stops and names the token and the feature.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sum } from '../src/index.js';
import { moeConfig } from '../src/moe/config.js';
import { NonFiniteInputError } from '../src/moe/finite-input.js';
import { MoELayer } from '../src/moe/layer.js';
import { fromArray } from '../src/ops/creation.js';
import { Generator } from '../src/tensor/random.js';

const H = 4;
const cfg = moeConfig({
  hiddenSize: H,
  router: { numExperts: 4, topK: 2, renormalize: 'sum' },
  experts: { intermediateSize: 6 },
  shared: null,
});

function input(bad: number | null): ReturnType<typeof fromArray> {
  const g = new Generator(1);
  const v = Float32Array.from({ length: 3 * H }, () => g.uniform() - 0.5);
  if (bad !== null) v[2 * H + 1] = bad; // token 2, feature 1
  return fromArray(v, [3, H]);
}

test('without the check, one NaN token makes every router-weight gradient NaN (why the check exists)', () => {
  const layer = new MoELayer(cfg, { generator: new Generator(2) });
  sum(layer.forward(input(NaN))).backward();
  assert.ok([...layer.routerWeight.grad!.dataSync()].every(Number.isNaN));
});

test('checkFiniteInput: NaN / inf router input is a NonFiniteInputError naming token and feature; finite input passes', () => {
  const layer = new MoELayer(cfg, { generator: new Generator(2), checkFiniteInput: true });
  for (const bad of [NaN, Infinity, -Infinity]) {
    assert.throws(
      () => layer.forward(input(bad)),
      (e: Error) => e instanceof NonFiniteInputError && /token 2, feature 1 is (NaN|-?Infinity)/.test(e.message),
    );
  }
  const ok = new MoELayer(cfg, { generator: new Generator(2) });
  assert.deepEqual([...layer.forward(input(null)).dataSync()], [...ok.forward(input(null)).dataSync()]);
});
