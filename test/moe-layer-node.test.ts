// The whole MoE block as one node (src/moe/kernel-path/layer-node.ts) and its native pieces:
// moePlanRoutes against dispatch.ts's planSlots, routerLayerBackward against routerBackward
// plus the router GEMM's backward and the dX combine computed here in float64, and MoELayer
// through the node against the reference composition (MOEKIT_MOE_FUSED=0) and finite
// differences, f32 and f64, with dropped slots, frozen weights and odd sizes.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { availableBackends, setBackend } from '../src/backend/index.js';
import type { FloatDType } from '../src/backend/types.js';
import { loadNativeAddon } from '../src/backend/native/addon.js';
import { type MoEConfigInput, moeConfig } from '../src/moe/config.js';
import { planSlots } from '../src/moe/dispatch.js';
import { moeAddonKernels, routerAddonKernels } from '../src/backend/native/moe-addon.js';

import { nativeMoeKernels } from '../src/backend/native/moe.js';
import type { Storage } from '../src/backend/types.js';
import { MoELayer } from '../src/moe/layer.js';
import { fromArray } from '../src/ops/creation.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { withKernels } from './helpers/env.js';
import { numericGrad } from './helpers/moe-reference.js';
import { assertClose } from './helpers/gradcheck.js';

const hasNative = availableBackends().includes('native');

const floats = (dtype: FloatDType, n: number, gen: Generator, lo = -1, hi = 1) => {
  const a = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * gen.uniform();
  return a;
};

/** Counts a router kernel's calls while fn runs. */
function counting<T>(name: 'routerLayerBackward' | 'routerBackward', fn: () => T): { value: T; calls: number } {
  const k = routerAddonKernels()!;
  const orig = k[name] as (...a: unknown[]) => void;
  let calls = 0;
  (k as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => {
    calls++;
    return orig.apply(k, a);
  };
  try {
    return { value: fn(), calls };
  } finally {
    (k as unknown as Record<string, unknown>)[name] = orig;
  }
}

describe('moePlanRoutes and routerLayerBackward [native]', { skip: !hasNative && 'native addon not built' }, () => {
  test('moePlanRoutes = planSlots, with the per-row maps, dropless and with a capacity', () => {
    const gen = new Generator(5);
    for (const [T, K, E] of [
      [37, 3, 5],
      [1, 1, 1],
      [64, 2, 8],
      [0, 2, 4],
    ] as const) {
      const ids = Int32Array.from({ length: T * K }, () => Math.floor(gen.uniform() * E));
      const w = floats('f32', T * K, gen) as Float32Array;
      for (const capacity of [null, 0, 3, Math.ceil((T * K) / E)]) {
        const ref = planSlots(ids, E, capacity);
        const got = planRoutes(ids, T, K, E, capacity, w);
        const what = `T=${T} K=${K} E=${E} capacity=${capacity}`;
        assert.deepEqual([...got.segOffsets], [...ref.segOffsets], `${what}: segOffsets`);
        assert.deepEqual([...got.sortedSlots], [...ref.sortedSlots], `${what}: sortedSlots`);
        assert.equal(got.droppedSlots, ref.droppedSlots.length, `${what}: dropped`);
        assert.deepEqual(
          [...got.rowTokens],
          [...ref.sortedSlots].map((s) => Math.floor(s / K)),
          `${what}: rowTokens`,
        );
        assert.deepEqual(
          [...got.rowWeights],
          [...ref.sortedSlots].map((s) => w[s]!),
          `${what}: rowWeights`,
        );
        const slotRows = new Array<number>(T * K).fill(-1);
        ref.sortedSlots.forEach((s, r) => (slotRows[s] = r));
        assert.deepEqual([...got.slotRows], slotRows, `${what}: slotRows`);
      }
    }
    assert.throws(
      () => planRoutes(Int32Array.of(0, 4, 1), 3, 1, 4, null, new Float32Array(3)),
      /moePlanRoutes: expert id 4 at slot 1 is outside \[0, 4\)/,
    );
    assert.throws(
      () => planRoutes(Int32Array.of(0, 1), 1, 2, 2, null, new Float64Array(2).subarray(0, 1)),
      /moePlanRoutes: weights has 1 elements, needs 2/,
    );
  });

  test('routerLayerBackward = routerBackward, then dlogitsᵀ·x and Σ_k rowDx + dlogits·wr (float64 here), at any thread count', () => {
    const addon = loadNativeAddon().addon!;
    const rk = routerAddonKernels()!;
    const gen = new Generator(11);
    // E not a multiple of the 8-expert tile, H not of the 32-column one; a third of the slots dropped
    for (const dtype of ['f32', 'f64'] as FloatDType[]) {
      const [T, E, K, H] = [53, 11, 3, 45];
      const logits = floats(dtype, T * E, gen, -3, 3);
      const scores = floats(dtype, T * E, gen);
      const ids = new Int32Array(T * K);
      const weights = floats(dtype, T * K, gen);
      const lse = floats(dtype, T, gen);
      rk.routerForward({
        logits,
        t: T,
        e: E,
        k: K,
        renorm: true,
        scale: 1.5,
        scores,
        ids,
        weights,
        lse,
        counts: new Int32Array(E),
        sums: new Float64Array(E + 2),
      });
      const S = 2 * T;
      const slotRow = Int32Array.from({ length: T * K }, (_, s) => (s % 3 === 2 ? -1 : Math.floor((s / 3) * 2) + (s % 3)));
      const rowDw = floats(dtype, S, gen);
      const rowDx = floats(dtype, S * H, gen);
      const x = floats(dtype, T * H, gen);
      const wr = floats(dtype, E * H, gen);
      const lbCoef = Float64Array.from({ length: E }, () => gen.uniform() * 0.1);
      // reference: dweights gathered here, dlogits from routerBackward, the rest in float64
      const dweights = floats(dtype, T * K, gen).map((_, s) => (slotRow[s]! >= 0 ? rowDw[slotRow[s]!]! : 0));
      const dlogits = floats(dtype, T * E, gen);
      rk.routerBackward({ scores, lse, ids, dweights, t: T, e: E, k: K, renorm: true, scale: 1.5, lbCoef, zCoef: 0.02, dlogits });
      const dwrRef = new Float64Array(E * H);
      const dxRef = new Float64Array(T * H);
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < H; j++) {
          let v = 0;
          for (let k = 0; k < K; k++) if (slotRow[t * K + k]! >= 0) v += rowDx[slotRow[t * K + k]! * H + j]!;
          for (let e = 0; e < E; e++) {
            v += dlogits[t * E + e]! * wr[e * H + j]!;
            dwrRef[e * H + j] += dlogits[t * E + e]! * x[t * H + j]!;
          }
          dxRef[t * H + j] = v;
        }
      }
      const [atol, rtol] = dtype === 'f64' ? [1e-12, 1e-10] : [1e-5, 1e-4];
      const run = (threads: number) => {
        addon.setNumThreads(threads);
        try {
          const dwr = floats(dtype, E * H, gen);
          const dx = floats(dtype, T * H, gen);
          rk.routerLayerBackward({
            scores,
            lse,
            ids,
            rowDw,
            slotRow,
            t: T,
            e: E,
            k: K,
            renorm: true,
            scale: 1.5,
            lbCoef,
            zCoef: 0.02,
            x,
            dwr,
            wr,
            rowDx,
            h: H,
            dx,
          });
          return { dwr, dx };
        } finally {
          addon.setNumThreads(0);
        }
      };
      const one = run(1);
      assertClose(one.dwr, dwrRef, atol, rtol, `${dtype} dwr`);
      assertClose(one.dx, dxRef, atol, rtol, `${dtype} dx`);
      for (const threads of [2, 3, 7]) {
        const got = run(threads);
        assert.deepEqual(got.dwr, one.dwr, `${dtype} dwr at ${threads} threads`);
        assert.deepEqual(got.dx, one.dx, `${dtype} dx at ${threads} threads`);
      }
      // no weights term, no dx: dwr from the aux terms' dlogits alone
      const dlAux = floats(dtype, T * E, gen);
      rk.routerBackward({
        scores,
        lse,
        ids,
        dweights: null,
        t: T,
        e: E,
        k: K,
        renorm: true,
        scale: 1.5,
        lbCoef,
        zCoef: 0.02,
        dlogits: dlAux,
      });
      const dwrAux = new Float64Array(E * H);
      for (let t = 0; t < T; t++)
        for (let e = 0; e < E; e++) for (let j = 0; j < H; j++) dwrAux[e * H + j] += dlAux[t * E + e]! * x[t * H + j]!;
      const dwr = floats(dtype, E * H, gen);
      rk.routerLayerBackward({
        scores,
        lse,
        ids,
        rowDw: null,
        slotRow,
        t: T,
        e: E,
        k: K,
        renorm: true,
        scale: 1.5,
        lbCoef,
        zCoef: 0.02,
        x,
        dwr,
        wr: null,
        rowDx: null,
        h: H,
        dx: null,
      });
      assertClose(dwr, dwrAux, atol, rtol, `${dtype} dwr without the weights term`);
      // the call the two checks below break, one field each
      const badCall = {
        scores,
        lse,
        ids,
        rowDw,
        slotRow,
        t: T,
        e: E,
        k: K,
        renorm: true,
        scale: 1.5,
        lbCoef: null,
        zCoef: 0,
        x: null,
        dwr: null,
        wr: null,
        rowDx: null,
        h: H,
        dx: null,
      };
      assert.throws(
        () => rk.routerLayerBackward({ ...badCall, slotRow: Int32Array.from(slotRow, (r) => (r === 0 ? S : r)) }),
        new RegExp(`routerLayerBackward: slotRow\\[0\\] = ${S} is past the rows of rowDw / rowDx \\(${S}\\)`),
      );
      assert.throws(() => rk.routerLayerBackward({ ...badCall, dx: floats(dtype, T * H, gen) }), /routerLayerBackward: wr must be/);
    }
  });
});

interface Case {
  name: string;
  input: MoEConfigInput;
  /** micro-batches before the compared one (global-batch LB accumulates over them) */
  warmup?: number;
  frozenRouter?: boolean;
  xNoGrad?: boolean;
}

const CASES: Case[] = [
  {
    name: 'bench-like: E=8 K=2 sum, LB one + z',
    input: {
      hiddenSize: 40,
      router: { numExperts: 8, topK: 2, renormalize: 'sum' },
      experts: { intermediateSize: 24 },
      losses: { lbWeight: 0.01, zLossWeight: 0.001, lbConvention: 'one' },
    },
  },
  {
    name: 'E=11 K=3, scaling 2, capacity drops, global-batch LB top-k, shared expert',
    input: {
      hiddenSize: 37,
      router: { numExperts: 11, topK: 3, scalingFactor: 2 },
      experts: { intermediateSize: 9 },
      dispatch: { capacityFactor: 0.5, capacityMultiple: 1 },
      shared: { intermediateSize: 5 },
      losses: { lbWeight: 0.2, zLossWeight: 0.05, lbConvention: 'top-k', lbGranularity: 'global-batch' },
    },
    warmup: 2,
  },
  {
    name: 'no aux losses, frozen router weight',
    input: { hiddenSize: 16, router: { numExperts: 4, topK: 1 }, experts: { intermediateSize: 8 } },
    frozenRouter: true,
  },
  {
    name: 'x without grad (router weight still learns)',
    input: {
      hiddenSize: 16,
      router: { numExperts: 6, topK: 2, renormalize: 'sum' },
      experts: { intermediateSize: 8 },
      losses: { zLossWeight: 0.1 },
    },
    xNoGrad: true,
  },
];

function runCase(c: Case, dtype: FloatDType, fused: boolean) {
  return withKernels(fused, () => {
    const layer = new MoELayer(moeConfig(c.input), { dtype, generator: new Generator(3) });
    if (c.frozenRouter) layer.routerWeight.requiresGrad_(false);
    const H = c.input.hiddenSize;
    const gen = new Generator(9);
    const rand = (shape: number[]) =>
      fromArray(
        floats(
          dtype,
          shape.reduce((p, d) => p * d, 1),
          gen,
        ),
        shape,
      );
    for (let i = 0; i < (c.warmup ?? 0); i++) layer.forward(rand([3, 11, H]));
    layer.zeroGrad();
    const x = rand([3, 11, H]);
    if (!c.xNoGrad) x.requiresGrad_();
    const dy = rand([3, 11, H]);
    const y = layer.forward(x);
    y.backward(dy);
    const m = layer.lastMetrics!;
    return {
      tensors: [y.dataSync(), ...(c.xNoGrad ? [] : [x.grad!.dataSync()]), ...layer.parameters().map((p) => p.grad?.dataSync() ?? null)],
      metrics: [m.lbLoss ?? -1, m.zLoss ?? -1, m.routerEntropy, m.droppedFraction],
    };
  });
}

describe('MoELayer as one fused node vs the reference composition [native]', { skip: !hasNative && 'native addon not built' }, () => {
  after(() => setBackend(availableBackends()[0]!));
  for (const dtype of ['f64', 'f32'] as FloatDType[]) {
    for (const c of CASES) {
      test(`${c.name} (${dtype})`, () => {
        setBackend('native');
        const { value: got, calls } = counting('routerLayerBackward', () => runCase(c, dtype, true));
        assert.equal(calls, 1, 'the fused layer node ran its backward');
        const ref = runCase(c, dtype, false);
        const [atol, rtol] = dtype === 'f64' ? [1e-12, 1e-10] : [2e-5, 2e-4];
        assertClose(got.metrics, ref.metrics, atol, rtol, 'lb, z, router entropy, dropped fraction');
        assert.equal(got.tensors.length, ref.tensors.length);
        got.tensors.forEach((v, i) => {
          if (v === null || ref.tensors[i] === null) assert.equal(v, ref.tensors[i], `tensor ${i}: both without a gradient`);
          else assertClose(v, ref.tensors[i]!, atol, rtol, `tensor ${i}`);
        });
      });
    }
  }

  test('falls back to the chain where the node does not apply: selection bias, router bias, jitter in training, a mask', () => {
    setBackend('native');
    const base: MoEConfigInput = {
      hiddenSize: 12,
      router: { numExperts: 6, topK: 2, renormalize: 'sum' },
      experts: { intermediateSize: 8 },
      losses: { lbWeight: 0.1 },
    };
    const variants: [string, MoEConfigInput, boolean][] = [
      ['plain', base, false],
      ['selection bias', { ...base, router: { ...base.router, selectionBias: { gamma: 0.5, rule: 'sign' } } }, false],
      ['router bias', { ...base, router: { ...base.router, routerBias: true } }, false],
      ['jitter', { ...base, router: { ...base.router, jitterEps: 0.01 } }, false],
      ['mask', base, true],
    ];
    for (const [name, input, masked] of variants) {
      const run = (fused: boolean) =>
        withKernels(fused, () => {
          const layer = new MoELayer(moeConfig(input), { dtype: 'f64', generator: new Generator(3) });
          const gen = new Generator(9);
          // a selection bias that changes the choice: expert 5 is always picked
          layer.selectionBias?.bias.storage.set([0, 0, 0, 0, 0, 10]);
          const x = fromArray(floats('f64', 9 * 12, gen), [9, 12]).requiresGrad_();
          const mask = masked
            ? fromArray(
                Float64Array.from({ length: 9 }, (_, t) => (t % 3 === 2 ? 0 : 1)),
                [9],
              )
            : null;
          const y = layer.forward(x, { mask });
          y.backward(fromArray(floats('f64', 9 * 12, gen), [9, 12]));
          return [
            y.dataSync(),
            x.grad!.dataSync(),
            ...layer.parameters().map((p) => p.grad!.dataSync()),
            layer.lastMetrics!.tokensPerExpert,
          ];
        });
      const { value: got, calls } = counting('routerLayerBackward', () => run(true));
      assert.equal(calls, name === 'plain' ? 1 : 0, `${name}: the fused layer node ${name === 'plain' ? 'ran' : 'did not run'}`);
      const ref = run(false);
      if (name === 'selection bias') assert.ok(ref[ref.length - 1]![5]! === 9, 'the bias made expert 5 take every token');
      got.forEach((v, i) => assertClose(v, ref[i]!, 1e-12, 1e-10, `${name}: tensor ${i}`));
    }
  });

  test('an empty batch (0 tokens): zero gradients, as the reference', () => {
    setBackend('native');
    const input: MoEConfigInput = {
      hiddenSize: 16,
      router: { numExperts: 4, topK: 2, renormalize: 'sum' },
      experts: { intermediateSize: 8 },
      losses: { lbWeight: 0.01, zLossWeight: 0.001 },
    };
    const run = (fused: boolean) =>
      withKernels(fused, () => {
        const layer = new MoELayer(moeConfig(input), { dtype: 'f32', generator: new Generator(3) });
        const x = fromArray(new Float32Array(0), [0, 16]).requiresGrad_();
        const y = layer.forward(x);
        y.backward(fromArray(new Float32Array(0), [0, 16]));
        return [y.shape, x.grad!.shape, ...layer.parameters().map((p) => [...p.grad!.dataSync()])];
      });
    const { value: got, calls } = counting('routerLayerBackward', () => run(true));
    assert.equal(calls, 1, 'the fused layer node ran');
    assert.deepEqual(got, run(false));
  });

  test('float64 finite differences through the node: <y, dy> + aux w.r.t. x and the router weight', () => {
    setBackend('native');
    const input: MoEConfigInput = {
      hiddenSize: 6,
      router: { numExperts: 5, topK: 2, renormalize: 'sum' },
      experts: { intermediateSize: 4 },
      losses: { lbWeight: 0.3, zLossWeight: 0.2 },
    };
    const layer = new MoELayer(moeConfig(input), { dtype: 'f64', generator: new Generator(4) });
    const gen = new Generator(8);
    const x = fromArray(floats('f64', 7 * 6, gen), [7, 6]);
    const dy = floats('f64', 7 * 6, gen);
    // the objective backward(dy) differentiates: <y, dy> plus the scaled aux losses riding on y
    const objective = (): number => {
      const y = noGrad(() => layer.forward(x)).dataSync();
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i]! * dy[i]!;
      // under noGrad the layer computes no aux losses: add them from a training forward's metrics
      layer.forward(x);
      const m = layer.lastMetrics!;
      return s + m.lbLossScaled! + m.zLossScaled!;
    };
    x.requiresGrad_();
    layer.zeroGrad();
    const { calls } = counting('routerLayerBackward', () => layer.forward(x).backward(fromArray(Float64Array.from(dy), [7, 6])));
    assert.equal(calls, 1, 'the fused layer node ran');
    const checks: [string, Tensor][] = [
      ['x', x],
      ['router weight', layer.routerWeight],
    ];
    for (const [name, t] of checks)
      assertClose(
        t.grad!.dataSync(),
        numericGrad(objective, t.storage as Float64Array),
        1e-6,
        1e-5,
        `${name}: autograd vs finite differences`,
      );
  });
});

/** The native backend's slot plan (MoeKernels.planRoutes) with positional arguments. */
function planRoutes(ids: Int32Array, T: number, K: number, E: number, capacity: number | null, weights: Storage) {
  return nativeMoeKernels(moeAddonKernels()!, routerAddonKernels()!).planRoutes({
    ids,
    numTokens: T,
    topK: K,
    numExperts: E,
    capacity,
    weights,
  });
}
