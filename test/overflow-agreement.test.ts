// Native and reference agree on overflow, with PyTorch's semantics (issue 27): logsumexp is
// +inf when a row holds +inf and -inf when all of it is -inf (not inf - inf = NaN); the router
// z-loss mean(logsumexp(logits)²) squares in the logits' dtype, so float32 logits of 1e30 give
// z = inf as torch does (the router kernels of both backends used to square in double: 1e60).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { availableBackends, setBackend } from '../src/backend/index.js';
import { parseRouterConfig } from '../src/moe/config.js';
import { zLoss } from '../src/moe/losses.js';
import { routeLogits } from '../src/moe/router.js';
import { fromArray } from '../src/ops/creation.js';
import { logsumexp } from '../src/ops/reduce.js';
import { withEnv, withKernels } from './helpers/env.js';

after(() => setBackend(availableBackends()[0]!));

// rows of [T, 3] logits and what torch.logsumexp(dim=-1) gives for them in float32
const ROWS: [number[], number][] = [
  [[1e30, 0, -1], 1e30],
  [[Infinity, 0, 1], Infinity],
  [[-Infinity, -Infinity, -Infinity], -Infinity],
  [[NaN, 0, 1], NaN],
  [[Infinity, -Infinity, 0], Infinity],
  [[0, 0, 0], Math.fround(Math.log(3))],
];

for (const backend of availableBackends()) {
  test(`[${backend}] logsumexp on overflowing rows, along the last and a middle axis`, () => {
    setBackend(backend);
    const flat = Float32Array.from(ROWS.flatMap(([r]) => r));
    const got = [...logsumexp(fromArray(flat, [ROWS.length, 3]), -1).dataSync()];
    assert.deepEqual(
      got,
      ROWS.map(([, want]) => Math.fround(want)),
    );
    // the same rows as columns: [3, T] reduced over axis 0 (the strided kernel)
    const cols = Float32Array.from({ length: 3 * ROWS.length }, (_, i) => ROWS[i % ROWS.length]![0][Math.floor(i / ROWS.length)]!);
    assert.deepEqual([...logsumexp(fromArray(cols, [3, ROWS.length]), 0).dataSync()], got);
  });

  test(`[${backend}] z-loss of float32 logits 1e30 is inf (torch), 1e19 stays finite`, () => {
    setBackend(backend);
    assert.equal(zLoss(fromArray(Float32Array.of(1e30, 0, -1, 1, 2, 3), [2, 3])).item(), Infinity);
    const finite = zLoss(fromArray(Float32Array.of(1e19, 1e19, 0), [1, 3])).item();
    assert.ok(Number.isFinite(finite) && Math.abs(finite / 1e38 - 1) < 1e-5, String(finite));
  });
}

for (const backend of availableBackends()) {
  test(`[${backend}] the router kernel's z-loss agrees with the reference composition on overflow`, () => {
    setBackend(backend);
    const cfg = parseRouterConfig({ numExperts: 3, topK: 2, renormalize: 'sum' });
    for (const values of [
      [1e30, 0, -1, 1, 2, 3],
      [1e19, 1e19, 0, 1, 2, 3],
      [Infinity, 0, 1, 1, 2, 3],
    ]) {
      const ref = withKernels(false, () => zLoss(routeLogits(fromArray(Float32Array.from(values), [2, 3]), cfg).logits).item());
      const kernel = withEnv('MOEKIT_MOE_PATH', 'kernels', () => {
        const r = routeLogits(fromArray(Float32Array.from(values), [2, 3]), cfg);
        assert.ok(r.pass, 'the router kernel ran');
        return r.pass.zLoss;
      });
      if (Number.isFinite(ref)) assert.ok(Math.abs(kernel / ref - 1) < 1e-6, `${values}: kernel ${kernel} vs composition ${ref}`);
      else assert.equal(kernel, ref, `${values}: kernel ${kernel} vs composition ${ref}`);
    }
  });
}
