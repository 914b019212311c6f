// Non-finite training steps (issue 27): by default training stops with an error naming the
// step, the variant and the first non-finite parameter or gradient, and the last checkpoint
// stays; --on-nonfinite skip drops the step and counts it in the result.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { mul } from '../src/ops/elementwise.js';
import { Generator } from '../src/tensor/random.js';
import { CtMoeGPT, experimentConfig, runAblation, type CtMoeData, type CtMoeExperimentConfig } from '../src/experiments/ctmoe/index.js';
import { checkpointSteps } from '../src/experiments/ctmoe/checkpoint.js';
import { NonFiniteError } from '../src/experiments/nonfinite.js';
import { full } from '../src/ops/creation.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'ctmoe-nonfinite-'));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const MICRO: CtMoeExperimentConfig = experimentConfig('tiny', {
  vocabSize: 256,
  seqLen: 8,
  dModel: 16,
  nHead: 2,
  nLayer: 1,
  numExperts: 4,
  topK: 3,
  batchSize: 4,
  steps: 8,
  warmup: 2,
  logEvery: 4,
  evalBatches: 1,
  freqBatches: 1,
  checkpointEvery: 2,
});

function synthData(): CtMoeData {
  const g = new Generator(7);
  const tokens = (n: number, lo: number) => Int32Array.from({ length: n }, () => lo + g.int(100));
  return { vocabSize: 256, train: tokens(1000, 0), val: { code: tokens(100, 0), prose: tokens(100, 120) } };
}

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
    () => withNaNLossAt(3, () => runAblation({ preset: MICRO, outDir: out, variants: ['CT-MoE-Full'], data: synthData() })),
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
    runAblation({ preset: MICRO, outDir: out, variants: ['StandardMoE'], data: synthData(), onNonFinite: 'skip' }),
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
    () => runAblation({ preset: { ...MICRO, routingScale: 1e300 }, outDir: out, variants: ['CT-MoE-Full'], data: synthData() }),
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
        data: synthData(),
        onNonFinite: 'skip',
      }),
    /step 1: loss NaN.*no checkpoint written yet; 21 steps in a row were not finite/,
  );
});
