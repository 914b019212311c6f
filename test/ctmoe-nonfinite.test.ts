// Non-finite training steps (issue 27): by default training stops with an error naming the
// step, the variant and the first non-finite parameter or gradient, and the last checkpoint
// stays; --on-nonfinite skip drops the step and counts it in the result.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { mul } from '../src/ops/elementwise.js';
import { CtMoeGPT, runAblation } from '../src/experiments/ctmoe/index.js';
import { checkpointSteps } from '../src/experiments/ctmoe/checkpoint.js';
import { NonFiniteError } from '../src/experiments/nonfinite.js';
import { full } from '../src/ops/creation.js';
import { ONE_LAYER_MICRO, randomTokens, tempDirs } from './helpers/ctmoe-one-layer.js';

const tmp = tempDirs('ctmoe-nonfinite-');

const MICRO = ONE_LAYER_MICRO;

/** Make the loss of the `at`-th call NaN (a batch gone bad), restoring the method after fn. */
function withNaNLossAt<T>(at: number, fn: () => T): T {
  const original = CtMoeGPT.prototype.loss;
  let calls = 0;
  CtMoeGPT.prototype.loss = function (this: CtMoeGPT, ids, targets) {
    const r = original.call(this, ids, targets);
    return ++calls === at ? { ...r, total: mul(r.total, full([], NaN)) } : r;
  };
  try {
    return fn();
  } finally {
    CtMoeGPT.prototype.loss = original;
  }
}

test('default policy: a NaN loss at step 3 stops with step, variant and the first bad gradient; checkpoint 2 stays', () => {
  const out = tmp();
  assert.throws(
    () => withNaNLossAt(3, () => runAblation({ preset: MICRO, outDir: out, variants: ['CT-MoE-Full'], data: randomTokens() })),
    (e: Error) => {
      assert.ok(e instanceof NonFiniteError, String(e));
      assert.equal(e.step, 3);
      assert.equal(e.variant, 'CT-MoE-Full');
      assert.match(
        e.message,
        /^CT-MoE-Full: step 3: loss NaN, gradient norm NaN; first non-finite: gradient of '[\w.]+'\[\d+\] = NaN; .*the last checkpoint \(step 2\) kept/,
      );
      return true;
    },
  );
  assert.deepEqual(checkpointSteps(join(out, 'CT-MoE-Full')), [2]);
});

test('skip policy: the bad step is dropped (no update) and counted; every recorded loss is finite', () => {
  const out = tmp();
  const r = withNaNLossAt(3, () =>
    runAblation({ preset: MICRO, outDir: out, variants: ['StandardMoE'], data: randomTokens(), onNonFinite: 'skip' }),
  );
  const v = r.variants['StandardMoE']!.result!;
  assert.deepEqual(v.nonFinite, { policy: 'skip', skipped: 1, skippedAt: [3] });
  assert.equal(v.trainLoss.length, 8);
  assert.ok(v.trainLoss.every(Number.isFinite) && v.logs.every((l) => Number.isFinite(l.loss) && Number.isFinite(l.valPpl)));
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).variants.StandardMoE.result.nonFinite.skippedAt, [3]);
});

test('a config that overflows (routingScale 1e300) stops at step 1 instead of training on NaN', () => {
  const out = tmp();
  assert.throws(
    () => runAblation({ preset: { ...MICRO, routingScale: 1e300 }, outDir: out, variants: ['CT-MoE-Full'], data: randomTokens() }),
    /^NonFiniteError: CT-MoE-Full: step 1: loss NaN|CT-MoE-Full: step 1: /,
  );
});

test('skip policy gives up after 20 non-finite steps in a row (an overflowing config, not one bad batch)', () => {
  const out = tmp();
  assert.throws(
    () =>
      runAblation({
        preset: { ...MICRO, routingScale: 1e300 },
        outDir: out,
        variants: ['CT-MoE-Full'],
        data: randomTokens(),
        onNonFinite: 'skip',
      }),
    /step 1: loss NaN.*no checkpoint written yet; 21 steps in a row were not finite/,
  );
});
