// The MoE execution plan (src/moe/execution/plan.ts) and the backend's MoE kernels:
// - the reference backend's plain-TypeScript twins (src/backend/reference/moe.ts) against the
//   native kernels, call by call, with windows, gathers, scales, transposes and accumulation;
// - MoELayer on the reference backend forced onto the 'kernels' and 'layer' paths (the twins
//   standing in for the native kernels) against the reference composition, in float64;
// - which path a layer plans, and its one-line reason.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { availableBackends, getBackend, setBackend } from '../src/backend/index.js';
import type { MoeKernels } from '../src/backend/moe.js';
import { referenceMoeKernels } from '../src/backend/reference/moe.js';
import type { FloatDType } from '../src/backend/types.js';
import { type MoEConfigInput, moeConfig } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { fromArray } from '../src/ops/creation.js';
import { Generator } from '../src/tensor/random.js';
import { withEnv } from './helpers/env.js';
import { assertClose } from './helpers/gradcheck.js';

const hasNative = availableBackends().includes('native');

function floats(dtype: FloatDType, n: number, gen: Generator, lo = -1, hi = 1): Float32Array | Float64Array {
  const a = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * gen.uniform();
  return a;
}

const tol = (dtype: FloatDType): [number, number] => (dtype === 'f64' ? [1e-12, 1e-10] : [2e-5, 2e-4]);

describe('the reference MoE kernels are the native ones, call by call [native]', { skip: !hasNative && 'native addon not built' }, () => {
  after(() => setBackend(availableBackends()[0]!));
  const native = (): MoeKernels => setBackend('native').moe!;
  const twin = referenceMoeKernels;
  const seg = Int32Array.of(0, 5, 5, 12, 19); // 4 experts, one empty, 19 rows
  const S = 19;

  for (const dtype of ['f64', 'f32'] as FloatDType[]) {
    test(`gemmRows (gather, scale, both orientations, K-stacked, windows, accumulate) and gemmWgrad (${dtype})`, () => {
      const gen = new Generator(1);
      const [n, k, T] = [7, 6, 11];
      const aIdx = Int32Array.from({ length: S }, (_, r) => (r * 5) % T);
      const a = floats(dtype, T * k + 3, gen);
      const scale = floats(dtype, S, gen);
      for (const trans of [false, true]) {
        const b = floats(dtype, 4 * n * k + 2, gen);
        const b2 = floats(dtype, 4 * n * k, gen);
        const init = floats(dtype, S * (n + 2) + 1, gen);
        for (const stacked of [false, true]) {
          const run = (kk: MoeKernels, accumulate: boolean) => {
            const c = init.slice();
            const kSplit = stacked ? k / 2 : k; // b and b2 share ld: both halves as wide
            const ld = trans ? kSplit : n;
            kk.gemmRows({
              a: { data: a, offset: 3, ld: k },
              aIdx,
              scale,
              b: { data: b, offset: 2, ld, trans, expertStride: n * k },
              b2: stacked ? { data: b2, kSplit } : null,
              seg,
              c: { data: c, offset: 1, ld: n + 2 },
              n,
              k,
              accumulate,
            });
            return c;
          };
          for (const acc of [false, true])
            assertClose(run(twin, acc), run(native(), acc), ...tol(dtype), `trans ${trans} stacked ${stacked} accumulate ${acc}`);
        }
      }
      const g = floats(dtype, S * n, gen);
      const wgrad = (kk: MoeKernels, accumulate: boolean) => {
        const c = floats(dtype, 4 * k * n, new Generator(2));
        kk.gemmWgrad({ a: { data: a, offset: 3, ld: k }, aIdx, scale, b: { data: g, ld: n }, bIdx: null, seg, c, m: k, n, accumulate });
        return c;
      };
      for (const acc of [false, true]) assertClose(wgrad(twin, acc), wgrad(native(), acc), ...tol(dtype), `wgrad accumulate ${acc}`);
    });

    test(`gemmSwiglu, swigluForward / swigluBackward in both layouts, combine, planRoutes (${dtype})`, () => {
      const gen = new Generator(3);
      const [i, k, T, K] = [5, 6, 11, 2];
      const a = floats(dtype, T * k, gen);
      const aIdx = Int32Array.from({ length: S }, (_, r) => (r * 3) % T);
      const w = floats(dtype, 4 * 2 * i * k, gen);
      const swiglu = (kk: MoeKernels) => {
        const gu = floats(dtype, S * 2 * i, new Generator(4));
        const h = floats(dtype, S * i, new Generator(4));
        kk.gemmSwiglu({
          a: { data: a, ld: k },
          aIdx,
          gate: { data: w, ld: k, trans: true, expertStride: 2 * i * k },
          up: { data: w, offset: i * k },
          seg,
          gu: { data: gu, ld: 2 * i, upOffset: i },
          h,
          i,
          k,
        });
        return [...gu, ...h];
      };
      assertClose(swiglu(twin), swiglu(native()), ...tol(dtype), 'gemmSwiglu');
      for (const [gateOffset, upOffset, colStride] of [
        [0, i, 1],
        [0, 1, 2],
      ] as const) {
        const gu = floats(dtype, S * 2 * i, gen, -3, 3);
        const dy = floats(dtype, S * i, gen);
        const rowScale = floats(dtype, S, gen);
        const layout = { gu, ld: 2 * i, gateOffset, upOffset, colStride, rows: S, i };
        const pass = (kk: MoeKernels) => {
          const h = floats(dtype, S * i, new Generator(5));
          kk.swigluForward({ ...layout, h });
          const dgu = gu.slice();
          const dyCopy = dy.slice();
          const rowDot = floats(dtype, S, new Generator(5));
          kk.swigluBackward({ ...layout, gu: dgu, dy: dyCopy, rowScale, dgu, hOut: dyCopy, rowDot }); // in place, as the node calls it
          return [...h, ...dgu, ...dyCopy, ...rowDot];
        };
        assertClose(pass(twin), pass(native()), ...tol(dtype), `SwiGLU passes, colStride ${colStride}`);
      }
      const ids = Int32Array.from({ length: T * K }, (_, s) => (s * 7) % 4);
      const weights = floats(dtype, T * K, gen);
      for (const capacity of [null, 3]) {
        const p = twin.planRoutes({ ids, numTokens: T, topK: K, numExperts: 4, capacity, weights });
        const q = native().planRoutes({ ids, numTokens: T, topK: K, numExperts: 4, capacity, weights });
        assert.deepEqual(
          [p.segOffsets, p.sortedSlots, p.rowTokens, p.slotRows, p.droppedSlots],
          [q.segOffsets, q.sortedSlots, q.rowTokens, q.slotRows, q.droppedSlots],
          `plan, capacity ${capacity}`,
        );
        assert.deepEqual(p.rowWeights, q.rowWeights);
        const y = floats(dtype, T * K * 6, gen);
        const combine = (kk: MoeKernels) => {
          const out = floats(dtype, T * 6, new Generator(6));
          kk.combine({ y: { data: y, ld: 6 }, slotRows: p.slotRows, weights, numTokens: T, topK: K, h: 6, out });
          return out;
        };
        assertClose(combine(twin), combine(native()), ...tol(dtype), 'combine');
      }
    });

    test(`routerForward (with ties), routerBackward and routerLayerBackward (${dtype})`, () => {
      const gen = new Generator(7);
      const [T, E, K, H] = [9, 6, 3, 5];
      const logits = floats(dtype, T * E, gen, -2, 2);
      logits.fill(0.5, 0, E); // a row of ties: the lower index first
      for (const renorm of [false, true]) {
        const shape = { numTokens: T, numExperts: E, topK: K, renorm, scale: 1.5 };
        const p = twin.routerForward(logits, shape);
        const q = native().routerForward(logits, shape);
        assert.deepEqual([...p.ids], [...q.ids], 'ids');
        assert.deepEqual([...p.counts], [...q.counts], 'counts');
        assertClose(
          [...p.scores, ...p.weights, ...p.lse, ...p.scoreSums, p.entropySum, p.lseSquaredSum],
          [...q.scores, ...q.weights, ...q.lse, ...q.scoreSums, q.entropySum, q.lseSquaredSum],
          ...tol(dtype),
          'forward',
        );
        const terms = {
          ...shape,
          scores: q.scores,
          lse: q.lse,
          ids: q.ids,
          lbCoef: Float64Array.from({ length: E }, (_, e) => 0.01 * e),
          zCoef: 0.03,
        };
        const dweights = floats(dtype, T * K, gen);
        assertClose(twin.routerBackward(terms, dweights), native().routerBackward(terms, dweights), ...tol(dtype), 'routerBackward');
        const slotRows = Int32Array.from({ length: T * K }, (_, s) => (s % 4 === 3 ? -1 : s));
        const rowDw = floats(dtype, T * K, gen);
        const rowDx = floats(dtype, T * K * H, gen);
        const x = floats(dtype, T * H, gen);
        const wr = floats(dtype, E * H, gen);
        const layer = (kk: MoeKernels) => {
          const dwr = floats(dtype, E * H, new Generator(8));
          const dx = floats(dtype, T * H, new Generator(8));
          kk.routerLayerBackward({ ...terms, rowDw, slotRows, hidden: H, x, dwr, wr, rowDx, dx });
          return [...dwr, ...dx];
        };
        assertClose(layer(twin), layer(native()), ...tol(dtype), 'routerLayerBackward');
      }
    });
  }
});

const LAYERS: { name: string; input: MoEConfigInput }[] = [
  {
    name: 'softmax top-2, separate out-in, capacity drops, shared expert, LB + z',
    input: {
      hiddenSize: 8,
      router: { numExperts: 5, topK: 2, renormalize: 'sum' },
      experts: { intermediateSize: 6 },
      dispatch: { capacityFactor: 0.6, capacityMultiple: 1 },
      shared: { intermediateSize: 4 },
      losses: { lbWeight: 0.1, zLossWeight: 0.01 },
    },
  },
  {
    name: 'fused in-out layout, top-1, scaled',
    input: {
      hiddenSize: 6,
      router: { numExperts: 3, topK: 1, scalingFactor: 2 },
      experts: { intermediateSize: 5, layout: 'fused', orientation: 'in-out' },
    },
  },
  {
    name: 'interleaved layout',
    input: {
      hiddenSize: 6,
      router: { numExperts: 4, topK: 2 },
      experts: { intermediateSize: 3, layout: 'interleaved' },
      losses: { zLossWeight: 0.1 },
    },
  },
];

function runLayer(input: MoEConfigInput, path: string) {
  return withEnv('MOEKIT_MOE_PATH', path, () => {
    const layer = new MoELayer(moeConfig(input), { dtype: 'f64', generator: new Generator(3) });
    const gen = new Generator(9);
    const H = input.hiddenSize;
    const x = fromArray(floats('f64', 2 * 7 * H, gen), [2, 7, H]).requiresGrad_();
    const y = layer.forward(x);
    y.backward(fromArray(floats('f64', 2 * 7 * H, gen), [2, 7, H]));
    const m = layer.lastMetrics!;
    return {
      plan: layer.executionPlan,
      tensors: [y.dataSync(), x.grad!.dataSync(), ...layer.parameters().map((p) => p.grad!.dataSync())],
      metrics: [m.lbLoss ?? -1, m.zLoss ?? -1, m.routerEntropy, m.droppedFraction],
    };
  });
}

describe('MoELayer on the reference backend through its kernel twins', () => {
  after(() => setBackend(availableBackends()[0]!));
  for (const c of LAYERS) {
    test(`${c.name}: the 'kernels' and 'layer' paths equal the composition (f64)`, () => {
      setBackend('reference');
      const ref = runLayer(c.input, 'reference');
      assert.equal(ref.plan.path, 'reference');
      for (const path of ['kernels', 'layer']) {
        const got = runLayer(c.input, path);
        assert.equal(got.plan.path, path, got.plan.summary);
        assertClose(got.metrics, ref.metrics, 1e-12, 1e-10, `${path}: lb, z, entropy, dropped`);
        got.tensors.forEach((v, i) => assertClose(v, ref.tensors[i]!, 1e-12, 1e-10, `${path}: tensor ${i}`));
      }
    });
  }
});

describe('what a layer plans, and why', () => {
  after(() => setBackend(availableBackends()[0]!));
  const plan = (input: MoEConfigInput, path = '') => withEnv('MOEKIT_MOE_PATH', path, () => new MoELayer(moeConfig(input)).executionPlan);
  const base: MoEConfigInput = { hiddenSize: 8, router: { numExperts: 4, topK: 2 }, experts: { intermediateSize: 4 } };

  test('the reference backend composes by default; MOEKIT_MOE_PATH forces a path or is rejected', () => {
    setBackend('reference');
    const p = plan(base);
    assert.equal(p.path, 'reference');
    assert.match(p.summary, /reference backend's MoE kernels are not faster/);
    assert.equal(plan(base, 'kernels').path, 'kernels');
    assert.throws(() => plan(base, 'fast'), {
      name: 'EnvError',
      message: /^MOEKIT_MOE_PATH='fast' is invalid: expected 'auto' or 'reference' or 'kernels' or 'layer'/,
    });
  });

  test('native: the layer node, the kernel chain or the composition, each with its reason [native]', {
    skip: !hasNative && 'native addon not built',
  }, () => {
    setBackend('native');
    assert.equal(getBackend().name, 'native');
    assert.equal(plan(base).path, 'layer');
    const sigmoid = plan({ ...base, router: { numExperts: 4, topK: 2, scoreFunc: 'sigmoid' } });
    assert.equal(sigmoid.path, 'kernels');
    assert.match(sigmoid.summary, /router: composition \(score function 'sigmoid'\); experts: one kernel node/);
    const gelu = plan({ ...base, router: { numExperts: 4, topK: 2, routerBias: true } });
    assert.equal(gelu.path, 'kernels');
    assert.match(gelu.summary, /not one layer node: a router bias/);
    const neither = plan({
      ...base,
      router: { numExperts: 4, topK: 2, scoreFunc: 'sigmoid' },
      dispatch: { weightsOn: 'input' },
    });
    assert.equal(neither.path, 'reference');
    assert.match(neither.summary, /no MoE kernel covers it \(router: score function 'sigmoid'; experts: weights on the input\)/);
    const gelu2 = plan({ ...base, experts: { intermediateSize: 4, kind: 'gelu' } });
    assert.equal(gelu2.path, 'layer');
    assert.match(gelu2.summary, /GELU experts/);
    const oss = plan({ ...base, router: { numExperts: 4, topK: 2, routerBias: true }, experts: { intermediateSize: 4, kind: 'gpt-oss' } });
    assert.equal(oss.path, 'kernels');
    assert.match(oss.summary, /experts: one kernel node; not one layer node: a router bias/);
    assert.equal(plan(base, 'reference').path, 'reference');
    assert.equal(plan(base, 'kernels').path, 'kernels');
  });

  test('a layer plans once and again only when what it planned for changes [native]', {
    skip: !hasNative && 'native addon not built',
  }, () => {
    setBackend('native');
    const layer = new MoELayer(moeConfig(base));
    const first = layer.executionPlan;
    assert.equal(first.path, 'layer');
    assert.equal(layer.executionPlan, first, 'the same plan object while nothing changed');
    withEnv('MOEKIT_MOE_PATH', 'reference', () => assert.equal(layer.executionPlan.path, 'reference'));
    assert.equal(layer.executionPlan.path, 'layer');
  });
});

test('`moekit info --layer` prints the plan of a preset on the backend that runs', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'info', '--layer', 'ct-moe'], {
    encoding: 'utf8',
    env: { ...process.env, MOEKIT_BACKEND: 'reference' },
  });
  assert.match(
    out,
    /^moekit: reference backend \(MOEKIT_BACKEND=reference\)\nmoekit: MoE layer 'ct-moe': reference composition: the reference backend's MoE kernels are not faster/,
  );
});
