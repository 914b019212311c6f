// Native and reference agree on overflow, with PyTorch's semantics (issue 27): logsumexp is
// +inf when a row holds +inf and -inf when all of it is -inf (not inf - inf = NaN); the router
// z-loss mean(logsumexp(logits)²) squares in the logits' dtype, so float32 logits of 1e30 give
// z = inf as torch does (the fused native router used to square in double: 1e60).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { availableBackends, setBackend } from '../src/backend/index.js';
import { parseRouterConfig } from '../src/moe/config.js';
import { fusedRouterState } from '../src/moe/fused/router.js';
import { zLoss } from '../src/moe/losses.js';
import { routeLogits } from '../src/moe/router.js';
import { fromArray } from '../src/ops/creation.js';
import { logsumexp } from '../src/ops/reduce.js';
import { withFused } from './helpers/env.js';

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
    assert.deepEqual(got, ROWS.map(([, want]) => Math.fround(want)));
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

test('[native] the fused router z-loss agrees with the reference composition on overflow', { skip: !availableBackends().includes('native') && 'no native addon' }, () => {
  setBackend('native');
  const cfg = parseRouterConfig({ numExperts: 3, topK: 2, renormalize: 'sum' });
  const cases: [number[], number][] = [
    [[1e30, 0, -1, 1, 2, 3], Infinity],
    [[1e19, 1e19, 0, 1, 2, 3], NaN], // finite: compared with the reference below
  ];
  for (const [values] of cases) {
    const ref = withFused(false, () => zLoss(routeLogits(fromArray(Float32Array.from(values), [2, 3]), cfg).logits).item());
    const fused = withFused(true, () => {
      const r = routeLogits(fromArray(Float32Array.from(values), [2, 3]), cfg);
      const s = fusedRouterState(r);
      assert.ok(s, 'the fused router ran');
      return s.zLoss;
    });
    if (Number.isFinite(ref)) assert.ok(Math.abs(fused / ref - 1) < 1e-6, `${values}: fused ${fused} vs reference ${ref}`);
    else assert.equal(fused, ref, `${values}: fused ${fused} vs reference ${ref}`);
  }
});
