// The router pass kernel (src/moe/kernel-path/router-pass.ts, router-aux-loss.ts) against the reference
// composition (routeLogits with MOEKIT_MOE_FUSED=0, loadBalancingLoss, zLoss, meanRowEntropy):
// ids, weights, scores, counts, LB / z values and gradients w.r.t. the logits, f32 and f64, on
// ties, K = 1, K = E, odd E, T = 1, both renormalisations, scaling, both LB conventions and
// global-batch f_e; finite-difference checks of the fused nodes; whole MoELayer fwd+bwd.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { availableBackends, setBackend } from '../src/backend/index.js';
import type { FloatDType } from '../src/backend/types.js';
import { type LbConvention, type MoEConfigInput, moeConfig, parseRouterConfig } from '../src/moe/config.js';
import type { RouterOutput } from '../src/moe/contracts.js';
import { routerAddonKernels } from '../src/backend/native/moe-addon.js';
import { routerPassAuxLoss } from '../src/moe/kernel-path/router-aux-loss.js';

import { MoELayer } from '../src/moe/layer.js';
import { loadBalancingLoss, zLoss } from '../src/moe/losses.js';
import { meanRowEntropy } from '../src/moe/metrics.js';
import { routeLogits } from '../src/moe/router.js';
import { fromArray } from '../src/ops/creation.js';
import { add, mul, sum } from '../src/ops/index.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { withKernels } from './helpers/env.js';
import { assertClose, gradcheck } from './helpers/gradcheck.js';

const hasNative = availableBackends().includes('native');

function array(dtype: FloatDType, values: ArrayLike<number>): Float32Array | Float64Array {
  return dtype === 'f64' ? Float64Array.from(values) : Float32Array.from(values);
}

interface Case {
  name: string;
  T: number;
  E: number;
  K: number;
  renormalize?: 'none' | 'sum';
  scalingFactor?: number;
  convention?: LbConvention;
  /** global-batch: f_e = (these earlier counts + this batch's) / (earlier tokens + T) */
  earlier?: { counts: number[]; tokens: number };
  /** logits[t, e]; default uniform in [-2, 2) */
  logit?: (t: number, e: number, gen: Generator) => number;
}

const CASES: Case[] = [
  { name: 'E=8 K=2 sum', T: 37, E: 8, K: 2, renormalize: 'sum' },
  {
    name: 'ties: identical rows, an all-equal row, equal pairs',
    T: 9,
    E: 6,
    K: 3,
    renormalize: 'sum',
    logit: (t, e) => (t % 3 === 0 ? 0.25 : t % 3 === 1 ? [1, 0.5, 1, 0.5, -1, 1][e]! : [0, 2, 2, -1, 0, 2][e]!),
  },
  { name: 'K=1 E=5', T: 11, E: 5, K: 1, convention: 'top-k' },
  { name: 'K=E=7 sum', T: 10, E: 7, K: 7, renormalize: 'sum' },
  { name: 'E=7 K=3 none, scaling 2.5', T: 19, E: 7, K: 3, scalingFactor: 2.5 },
  { name: 'T=1 sum, scaling 0.5', T: 1, E: 5, K: 2, renormalize: 'sum', scalingFactor: 0.5, convention: 'top-k' },
  { name: 'global-batch f_e', T: 23, E: 6, K: 2, renormalize: 'sum', earlier: { counts: [5, 0, 9, 2, 7, 1], tokens: 12 } },
  // big enough for the kernels to split rows over the thread pool
  { name: 'T=700 E=16 K=4 (parallel)', T: 700, E: 16, K: 4, renormalize: 'sum', convention: 'top-k' },
];

const W = { lb: 0.3, z: 0.07 };

function makeLogits(c: Case, dtype: FloatDType): Tensor {
  const gen = new Generator(11);
  const v: number[] = [];
  for (let t = 0; t < c.T; t++) for (let e = 0; e < c.E; e++) v.push(c.logit ? c.logit(t, e, gen) : -2 + 4 * gen.uniform());
  return fromArray(array(dtype, v), [c.T, c.E]).requiresGrad_();
}

function frequencies(c: Case, counts: ArrayLike<number>): Float64Array | null {
  if (!c.earlier) return null;
  const tokens = c.earlier.tokens + c.T;
  return Float64Array.from(c.earlier.counts, (n, e) => (n + counts[e]!) / tokens);
}

/** Route, build Σ topkWeights·cot + wlb·LB + wz·Z, backprop; fused or the reference composition. */
function runRouter(c: Case, dtype: FloatDType, fused: boolean) {
  return withKernels(fused, () => {
    const cfg = parseRouterConfig({
      numExperts: c.E,
      topK: c.K,
      renormalize: c.renormalize ?? 'none',
      scalingFactor: c.scalingFactor ?? 1,
    });
    const logits = makeLogits(c, dtype);
    const r: RouterOutput = routeLogits(logits, cfg);
    assert.equal((r.pass ?? null) !== null, fused, 'fused path applies exactly when on');
    const counts = r.counts.dataSync();
    const convention = c.convention ?? 'one';
    const freq = frequencies(c, counts);
    let lb: number;
    let z: number;
    let aux: Tensor;
    if (fused) {
      const a = routerPassAuxLoss((r.pass ?? null)!, { weights: W, convention, frequencies: freq });
      assert.equal(a.total!.gradFn?.name, 'routerAuxLoss');
      [lb, z, aux] = [a.lb!, a.z!, a.total!];
    } else {
      const l = loadBalancingLoss(r.scores, r.topkIds, { convention, frequencies: freq });
      const zl = zLoss(r.logits);
      [lb, z, aux] = [l.item(), zl.item(), add(mul(l, W.lb), mul(zl, W.z))];
    }
    const gen = new Generator(5);
    const cot = fromArray(
      array(
        dtype,
        Array.from({ length: c.T * c.K }, () => gen.uniform() - 0.5),
      ),
      [c.T, c.K],
    );
    add(sum(mul(r.topkWeights, cot)), aux).backward();
    return {
      ids: r.topkIds.dataSync(),
      weights: r.topkWeights.dataSync(),
      scores: r.scores.dataSync(),
      counts,
      lb,
      z,
      aux: aux.item(),
      entropy: fused ? (r.pass ?? null)!.entropy : meanRowEntropy(r.scores.dataSync(), c.T, c.E),
      dlogits: logits.grad!.dataSync(),
    };
  });
}

describe('fused router vs reference composition [native]', { skip: !hasNative && 'native addon not built' }, () => {
  after(() => setBackend(availableBackends()[0]!));
  for (const dtype of ['f64', 'f32'] as FloatDType[]) {
    for (const c of CASES) {
      test(`${c.name} (${dtype})`, () => {
        setBackend('native');
        const ref = runRouter(c, dtype, false);
        const got = runRouter(c, dtype, true);
        const [atol, rtol] = dtype === 'f64' ? [1e-12, 1e-12] : [1e-6, 1e-5];
        assert.deepEqual(got.ids, ref.ids, 'topk ids');
        assert.deepEqual(got.counts, ref.counts, 'counts');
        assert.deepEqual(got.scores, ref.scores, 'scores (the softmax op, bit for bit)');
        assertClose(got.weights, ref.weights, atol, rtol, 'topk weights');
        assertClose([got.lb, got.z, got.aux, got.entropy], [ref.lb, ref.z, ref.aux, ref.entropy], atol, rtol, 'lb, z, aux total, entropy');
        assertClose(got.dlogits, ref.dlogits, atol, rtol, 'd logits');
      });
    }
  }

  test('float64 finite differences: the topkWeights node, the scores node, the aux loss node', () => {
    setBackend('native');
    for (const renormalize of ['sum', 'none'] as const) {
      const cfg = parseRouterConfig({ numExperts: 5, topK: 2, renormalize, scalingFactor: 1.5 });
      const logits = makeLogits({ name: '', T: 4, E: 5, K: 2 }, 'f64');
      withKernels(true, () => {
        gradcheck((l) => routeLogits(l, cfg).topkWeights, [logits]);
        gradcheck((l) => routeLogits(l, cfg).scores, [logits]);
        for (const convention of ['one', 'top-k'] as const) {
          gradcheck(
            (l) => routerPassAuxLoss((routeLogits(l, cfg).pass ?? null)!, { weights: W, convention, frequencies: null }).total!,
            [logits],
          );
        }
        gradcheck(
          (l) =>
            routerPassAuxLoss((routeLogits(l, cfg).pass ?? null)!, {
              weights: W,
              convention: 'one',
              frequencies: Float64Array.of(0.5, 0, 0.9, 0.2, 0.4),
            }).total!,
          [logits],
        );
      });
    }
  });

  test('backward twice through a retained graph doubles the gradient', () => {
    setBackend('native');
    const c = CASES[0]!;
    const once = runRouter(c, 'f64', true).dlogits;
    withKernels(true, () => {
      const logits = makeLogits(c, 'f64');
      const r = routeLogits(logits, parseRouterConfig({ numExperts: c.E, topK: c.K, renormalize: 'sum' }));
      const gen = new Generator(5);
      const cot = fromArray(
        Float64Array.from({ length: c.T * c.K }, () => gen.uniform() - 0.5),
        [c.T, c.K],
      );
      const aux = routerPassAuxLoss((r.pass ?? null)!, { weights: W, convention: 'one', frequencies: null }).total!;
      const loss = add(sum(mul(r.topkWeights, cot)), aux);
      loss.backward(undefined, { retainGraph: true });
      loss.backward();
      assertClose(
        logits.grad!.dataSync(),
        Array.from(once, (v) => 2 * v),
        1e-12,
        1e-12,
        'd logits',
      );
    });
  });

  test('falls back where the fused path does not apply', () => {
    setBackend('native');
    const logits = makeLogits({ name: '', T: 6, E: 4, K: 2 }, 'f32');
    const fusedFor = (input: Record<string, unknown>, selectionBias: Tensor | null = null) =>
      withKernels(
        true,
        () => (routeLogits(logits, parseRouterConfig({ numExperts: 4, topK: 2, ...input }), { selectionBias }).pass ?? null) !== null,
      );
    assert.equal(fusedFor({ renormalize: 'sum', scalingFactor: 3 }), true);
    assert.equal(fusedFor({ scoreFunc: 'sigmoid' }), false);
    assert.equal(fusedFor({ selectOn: 'logits' }), false);
    assert.equal(fusedFor({ renormalize: 'pnorm' }), false);
    assert.equal(fusedFor({ uniformAssignment: true }), false);
    assert.equal(fusedFor({ groupLimit: { numGroups: 2, topkGroups: 1 } }), false);
    assert.equal(fusedFor({ selectionBias: { gamma: 0.001 } }, fromArray(Float32Array.of(0, 0.1, 0, 0), [4])), false);
    assert.equal(
      withKernels(false, () => routeLogits(logits, parseRouterConfig({ numExperts: 4, topK: 2 })).pass ?? null),
      null,
    );
    setBackend('reference');
    const refLogits = makeLogits({ name: '', T: 6, E: 4, K: 2 }, 'f32');
    assert.equal(
      withKernels(true, () => routeLogits(refLogits, parseRouterConfig({ numExperts: 4, topK: 2 })).pass ?? null),
      null,
    );
  });
});

interface LayerCase {
  name: string;
  input: MoEConfigInput;
  /** micro-batches before the compared one (global-batch LB accumulates over them) */
  warmup?: number;
  mask?: boolean;
  batch?: number;
}

const LAYER_CASES: LayerCase[] = [
  {
    name: 'bench-like: E=8 K=2 sum, LB one + z',
    input: {
      hiddenSize: 12,
      router: { numExperts: 8, topK: 2, renormalize: 'sum' },
      experts: { intermediateSize: 10 },
      losses: { lbWeight: 0.01, zLossWeight: 0.001, lbConvention: 'one' },
    },
  },
  {
    name: 'E=5 K=1 none, scaling 2, router bias, LB top-k global-batch',
    input: {
      hiddenSize: 9,
      router: { numExperts: 5, topK: 1, scalingFactor: 2, routerBias: true },
      experts: { intermediateSize: 7 },
      losses: { lbWeight: 0.2, zLossWeight: 0.05, lbConvention: 'top-k', lbGranularity: 'global-batch' },
    },
    warmup: 2,
  },
  {
    name: 'E=7 K=7 sum, shared expert, z only',
    input: {
      hiddenSize: 8,
      router: { numExperts: 7, topK: 7, renormalize: 'sum' },
      experts: { intermediateSize: 6 },
      shared: { intermediateSize: 5 },
      losses: { zLossWeight: 0.1 },
    },
  },
  {
    name: 'masked tokens (fused router, reference aux loss through the scores node)',
    input: {
      hiddenSize: 10,
      router: { numExperts: 6, topK: 2, renormalize: 'sum' },
      experts: { intermediateSize: 8 },
      losses: { lbWeight: 0.1, zLossWeight: 0.01 },
    },
    mask: true,
  },
  {
    name: "'instance' granularity (reference aux loss through the scores node)",
    input: {
      hiddenSize: 10,
      router: { numExperts: 6, topK: 3 },
      experts: { intermediateSize: 8 },
      losses: { lbWeight: 0.1, lbGranularity: 'instance' },
    },
    batch: 3,
  },
];

function runLayer(c: LayerCase, dtype: FloatDType, fused: boolean) {
  return withKernels(fused, () => {
    const layer = new MoELayer(moeConfig(c.input), { dtype, generator: new Generator(3) });
    const H = c.input.hiddenSize;
    const B = c.batch ?? 2;
    const gen = new Generator(9);
    const rand = (shape: number[]) =>
      fromArray(
        array(
          dtype,
          Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => 2 * gen.uniform() - 1),
        ),
        shape,
      );
    for (let i = 0; i < (c.warmup ?? 0); i++) layer.forward(rand([B, 7, H]));
    layer.zeroGrad();
    const x = rand([B, 7, H]).requiresGrad_();
    const mask = c.mask
      ? fromArray(
          array(
            dtype,
            Array.from({ length: B * 7 }, (_, t) => (t % 4 === 3 ? 0 : 1)),
          ),
          [B, 7],
        )
      : null;
    const dy = rand([B, 7, H]);
    const y = layer.forward(x, { mask });
    y.backward(dy);
    const m = layer.lastMetrics!;
    return {
      tensors: [y.dataSync(), x.grad!.dataSync(), ...layer.parameters().map((p) => p.grad!.dataSync())],
      metrics: [m.lbLoss ?? -1, m.zLoss ?? -1, m.routerEntropy, m.loadImbalance],
      counts: m.tokensPerExpert,
    };
  });
}

describe('MoELayer with the fused router vs the reference composition [native]', { skip: !hasNative && 'native addon not built' }, () => {
  after(() => setBackend(availableBackends()[0]!));
  for (const dtype of ['f64', 'f32'] as FloatDType[]) {
    for (const c of LAYER_CASES) {
      test(`${c.name} (${dtype})`, () => {
        setBackend('native');
        const k = routerAddonKernels()!;
        const forward = k.routerForward;
        let calls = 0;
        k.routerForward = (...a) => {
          calls++;
          return forward.apply(k, a);
        };
        let got: ReturnType<typeof runLayer>;
        try {
          got = runLayer(c, dtype, true);
        } finally {
          k.routerForward = forward;
        }
        assert.equal(calls, 1 + (c.warmup ?? 0), 'the fused router ran');
        const ref = runLayer(c, dtype, false);
        const [atol, rtol] = dtype === 'f64' ? [1e-12, 1e-10] : [2e-5, 2e-4];
        assert.deepEqual(got.counts, ref.counts, 'tokens per expert');
        assertClose(got.metrics, ref.metrics, atol, rtol, 'lb, z, router entropy, load imbalance');
        assert.equal(got.tensors.length, ref.tensors.length);
        got.tensors.forEach((v, i) =>
          assertClose(v, ref.tensors[i]!, atol, rtol, i === 0 ? 'y' : i === 1 ? 'dx' : `parameter grad ${i - 2}`),
        );
      });
    }
  }
});
