// The MoE kernel path (src/moe/kernel-path: the experts node over the backend's MoE kernels) against the reference composition of simple ops
// (LocalDispatcher.dispatch -> runExperts' grouped matmuls -> combine): outputs and gradients
// w.r.t. x, the top-k weights and every expert weight, f32 and f64, on edge cases (empty
// experts, one expert taking every slot, K = 1, odd sizes, capacity drops, all layouts).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { availableBackends, setBackend } from '../src/backend/index.js';
import type { FloatDType } from '../src/backend/types.js';
import { moeConfig, parseDispatchConfig, parseExpertConfig, type MoEConfigInput } from '../src/moe/config.js';
import { LocalDispatcher } from '../src/moe/dispatch.js';
import { ExpertBank, runExperts } from '../src/moe/experts.js';
import { bankKernels } from '../src/moe/execution/plan.js';
import { kernelExperts } from './helpers/kernel-path.js';
import { loadNativeAddon } from '../src/backend/native/addon.js';
import { moeAddonKernels } from '../src/backend/native/moe-addon.js';
import { groupedMatmul } from '../src/moe/grouped-gemm.js';
import { MoELayer } from '../src/moe/layer.js';
import { fromArray } from '../src/ops/creation.js';
import { mul, sum } from '../src/ops/index.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { withEnv, withKernels } from './helpers/env.js';
import { assertClose } from './helpers/gradcheck.js';

const hasNative = availableBackends().includes('native');

function rand(shape: number[], dtype: FloatDType, gen: Generator, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const a = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * gen.uniform();
  return fromArray(a, shape);
}

interface Case {
  name: string;
  T: number;
  H: number;
  I: number;
  E: number;
  K: number;
  /** expert id of slot s, given T, K, E */
  ids: (t: number, k: number) => number;
  layout?: 'separate' | 'fused' | 'interleaved';
  orientation?: 'out-in' | 'in-out';
  capacityFactor?: number | null;
}

const CASES: Case[] = [
  { name: 'basic', T: 12, H: 8, I: 6, E: 4, K: 2, ids: (t, k) => (t * 3 + k * 5) % 4 },
  { name: 'empty experts', T: 9, H: 5, I: 7, E: 6, K: 2, ids: (t, k) => (k === 0 ? 1 : 4 - (t % 2)) },
  { name: 'one expert takes all', T: 7, H: 6, I: 5, E: 3, K: 1, ids: () => 2 },
  { name: 'K=1 odd sizes', T: 37, H: 19, I: 23, E: 5, K: 1, ids: (t) => (t * 7) % 5 },
  { name: 'large rows (several tiles)', T: 200, H: 70, I: 45, E: 3, K: 2, ids: (t, k) => (t + k) % 3 },
  { name: 'fused layout', T: 15, H: 9, I: 5, E: 3, K: 2, ids: (t, k) => (t + 2 * k) % 3, layout: 'fused' },
  {
    name: 'interleaved in-out',
    T: 15,
    H: 9,
    I: 5,
    E: 3,
    K: 2,
    ids: (t, k) => (t * k + k) % 3,
    layout: 'interleaved',
    orientation: 'in-out',
  },
  { name: 'separate in-out', T: 21, H: 10, I: 6, E: 4, K: 3, ids: (t, k) => (t + k) % 4, orientation: 'in-out' },
  { name: 'fused in-out', T: 13, H: 7, I: 9, E: 3, K: 2, ids: (t, k) => (2 * t + k) % 3, layout: 'fused', orientation: 'in-out' },
  // H past the f32 / f64 K block (several K blocks before the gate is applied), I past one
  // column block
  { name: 'deep K, wide I', T: 40, H: 400, I: 600, E: 2, K: 2, ids: (t, k) => (t + k) % 2 },
  { name: 'capacity drops', T: 24, H: 8, I: 6, E: 4, K: 2, ids: (t, k) => (t % 5 === 0 ? 3 : (t + k) % 2), capacityFactor: 1 },
];

function runCase(c: Case, dtype: FloatDType, fused: boolean) {
  const gen = new Generator(42);
  const cfg = parseExpertConfig({
    kind: 'swiglu',
    intermediateSize: c.I,
    layout: c.layout ?? 'separate',
    orientation: c.orientation ?? 'out-in',
  });
  const bank = new ExpertBank(c.E, c.H, cfg, { dtype, generator: gen });
  const x = rand([c.T, c.H], dtype, gen).requiresGrad_();
  const ids = new Int32Array(c.T * c.K);
  for (let t = 0; t < c.T; t++) for (let k = 0; k < c.K; k++) ids[t * c.K + k] = c.ids(t, k);
  const topkIds = fromArray(ids, [c.T, c.K]);
  const topkWeights = rand([c.T, c.K], dtype, gen, 0.1, 1).requiresGrad_();
  const dy = rand([c.T, c.H], dtype, gen);
  const disp = new LocalDispatcher(c.E, parseDispatchConfig({ capacityFactor: c.capacityFactor ?? null, capacityMultiple: 1 }));
  let y: Tensor;
  if (fused) {
    const f = withKernels(true, () => kernelExperts(x, { topkIds, topkWeights }, disp, bank));
    assert.ok(f, 'fused path must apply');
    y = f.y;
  } else {
    y = withKernels(false, () => {
      const d = disp.dispatch(x, { topkIds, topkWeights });
      return disp.combine(runExperts(d.rows, d.exec, bank, cfg), d.meta);
    });
  }
  sum(mul(y, dy)).backward();
  const params = bank.namedParameters().map(([n, p]) => [n, p.grad!.dataSync()] as const);
  return { y: y.dataSync(), dx: x.grad!.dataSync(), dw: topkWeights.grad!.dataSync(), params };
}

/**
 * The fused forward of a case: under no grad (exercises the scratch pool's no-graph release and
 * the gated GEMM without gu), or with x requiring grad (the forward of a graph).
 */
function runCaseForward(c: Case, dtype: FloatDType, grad = false): Float32Array | Float64Array {
  const gen = new Generator(5);
  const cfg = parseExpertConfig({
    kind: 'swiglu',
    intermediateSize: c.I,
    layout: c.layout ?? 'separate',
    orientation: c.orientation ?? 'out-in',
  });
  const bank = new ExpertBank(c.E, c.H, cfg, { dtype, generator: gen });
  const x = rand([c.T, c.H], dtype, gen);
  if (grad) x.requiresGrad_();
  const ids = new Int32Array(c.T * c.K);
  for (let t = 0; t < c.T; t++) for (let k = 0; k < c.K; k++) ids[t * c.K + k] = c.ids(t, k);
  const disp = new LocalDispatcher(c.E, parseDispatchConfig({ capacityFactor: c.capacityFactor ?? null, capacityMultiple: 1 }));
  const f = kernelExperts(x, { topkIds: fromArray(ids, [c.T, c.K]), topkWeights: rand([c.T, c.K], dtype, gen, 0.1, 1) }, disp, bank);
  assert.ok(f && (f.y.gradFn !== null) === grad);
  return f.y.dataSync() as Float32Array | Float64Array;
}

/** Runs fn with MOEKIT_MOE_ROW_BLOCKS set ('0' pass by pass, '1' one row fusion). */
function withRowBlocks<T>(mode: '0' | '1', fn: () => T): T {
  return withEnv('MOEKIT_MOE_ROW_BLOCKS', mode, fn);
}

describe('fused MoE vs reference composition [native]', { skip: !hasNative && 'native addon not built' }, () => {
  after(() => setBackend(availableBackends()[0]!));
  for (const dtype of ['f64', 'f32'] as FloatDType[]) {
    for (const c of CASES) {
      for (const rows of ['0', '1'] as const) {
        test(`${c.name} (${dtype}, ${rows === '1' ? 'row fusion' : 'pass by pass'})`, () => {
          setBackend('native');
          const ref = runCase(c, dtype, false);
          const got = withRowBlocks(rows, () => runCase(c, dtype, true));
          const [atol, rtol] = dtype === 'f64' ? [1e-12, 1e-10] : [2e-5, 2e-4];
          assertClose(got.y, ref.y, atol, rtol, 'y');
          assertClose(got.dx, ref.dx, atol, rtol, 'dx');
          assertClose(got.dw, ref.dw, atol, rtol, 'dTopkWeights');
          assert.equal(got.params.length, ref.params.length);
          for (let i = 0; i < ref.params.length; i++)
            assertClose(got.params[i]![1], ref.params[i]![1], atol, rtol, `grad ${ref.params[i]![0]}`);
        });
      }
    }
  }

  test('backward twice through a retained graph (the saved gate/up buffer is reused in place)', () => {
    setBackend('native');
    for (const dtype of ['f64', 'f32'] as FloatDType[]) {
      const c = CASES[4]!;
      const once = runCase(c, dtype, true);
      const gen = new Generator(42);
      const cfg = parseExpertConfig({ kind: 'swiglu', intermediateSize: c.I, layout: 'separate', orientation: 'out-in' });
      const bank = new ExpertBank(c.E, c.H, cfg, { dtype, generator: gen });
      const x = rand([c.T, c.H], dtype, gen).requiresGrad_();
      const ids = new Int32Array(c.T * c.K);
      for (let t = 0; t < c.T; t++) for (let k = 0; k < c.K; k++) ids[t * c.K + k] = c.ids(t, k);
      const topkWeights = rand([c.T, c.K], dtype, gen, 0.1, 1).requiresGrad_();
      const dy = rand([c.T, c.H], dtype, gen);
      const disp = new LocalDispatcher(c.E, parseDispatchConfig({ capacityFactor: null, capacityMultiple: 1 }));
      const f = withKernels(true, () => kernelExperts(x, { topkIds: fromArray(ids, [c.T, c.K]), topkWeights }, disp, bank))!;
      const loss = sum(mul(f.y, dy));
      loss.backward(undefined, { retainGraph: true });
      loss.backward();
      const twice = (a: ArrayLike<number>) => Array.from(a, (v) => 2 * v);
      const [atol, rtol] = dtype === 'f64' ? [1e-12, 1e-10] : [2e-5, 2e-4];
      assertClose(x.grad!.dataSync(), twice(once.dx), atol, rtol, 'dx');
      assertClose(topkWeights.grad!.dataSync(), twice(once.dw), atol, rtol, 'dTopkWeights');
      const params = bank.namedParameters();
      for (let i = 0; i < params.length; i++)
        assertClose(params[i]![1].grad!.dataSync(), twice(once.params[i]![1]), atol, rtol, `grad ${params[i]![0]}`);
    }
  });

  test('buffers large enough for the scratch pool: repeated fwd+bwd, no-grad forwards in between, retained graph', () => {
    setBackend('native');
    // gu is [S, 2I] = 512 x 1024 and h [S, I]: >= 1 MiB, so they go through scratch.ts
    const c: Case = { name: 'pooled', T: 256, H: 40, I: 512, E: 4, K: 2, ids: (t, k) => (t * 3 + k) % 4 };
    for (const dtype of ['f32', 'f64'] as FloatDType[]) {
      const [atol, rtol] = dtype === 'f64' ? [1e-12, 1e-10] : [5e-5, 5e-4];
      const ref = runCase(c, dtype, false);
      for (let rep = 0; rep < 3; rep++) {
        const got = runCase(c, dtype, true);
        assertClose(got.y, ref.y, atol, rtol, `y (rep ${rep})`);
        assertClose(got.dx, ref.dx, atol, rtol, `dx (rep ${rep})`);
        assertClose(got.dw, ref.dw, atol, rtol, `dTopkWeights (rep ${rep})`);
        for (let i = 0; i < ref.params.length; i++)
          assertClose(got.params[i]![1], ref.params[i]![1], atol, rtol, `grad ${ref.params[i]![0]} (rep ${rep})`);
        // a no-grad forward returns its buffers to the pool right away; in a row fusion its gu
        // (no backward will read it) is block-local like h
        const fusedRowsY = withKernels(true, () => withRowBlocks('1', () => noGrad(() => runCaseForward(c, dtype))));
        const passesY = withKernels(true, () => withRowBlocks('0', () => noGrad(() => runCaseForward(c, dtype))));
        assertClose(fusedRowsY, passesY, atol, rtol, `no-grad y (rep ${rep})`);
      }
    }
  });

  test('no-grad forward (gated GEMM without gu, tiles in a per-thread buffer) gives the bits of the forward that keeps the graph', () => {
    setBackend('native');
    // every case pass by pass (the row fusion makes gu block-local instead), and one whose
    // tasks span several K blocks and column blocks with rows left over
    const cases: Case[] = [...CASES, { name: 'wide', T: 150, H: 1100, I: 700, E: 3, K: 2, ids: (t, k) => (t + k) % 3 }];
    for (const dtype of ['f64', 'f32'] as FloatDType[]) {
      for (const c of cases) {
        const [graph, noGraph] = withKernels(true, () =>
          withRowBlocks('0', () => [runCaseForward(c, dtype, true), noGrad(() => runCaseForward(c, dtype))]),
        );
        assert.deepEqual(noGraph, graph, `${c.name} ${dtype}`);
      }
    }
  });

  test('ExpertBank.forward on sorted rows uses the fused node and matches', () => {
    setBackend('native');
    for (const dtype of ['f64', 'f32'] as FloatDType[]) {
      const gen = new Generator(7);
      const cfg = parseExpertConfig({ kind: 'swiglu', intermediateSize: 9 });
      const bank = new ExpertBank(3, 11, cfg, { dtype, generator: gen });
      const rows = rand([17, 11], dtype, gen).requiresGrad_();
      const seg = Int32Array.of(0, 5, 5, 17);
      const exec = {
        numExperts: 3,
        numRows: 17,
        segOffsets: seg,
        rowsPerExpert: Int32Array.of(5, 0, 12),
        rowExperts: fromArray(Int32Array.of(...Array(5).fill(0), ...Array(12).fill(2)), [17]),
      };
      const dy = rand([17, 11], dtype, gen);
      const run = (on: boolean) =>
        withKernels(on, () => {
          bank.zeroGrad();
          rows.grad = null;
          const y = bank.forward(rows, exec);
          assert.equal(y.gradFn?.name === 'expertRows', on);
          sum(mul(y, dy)).backward();
          return [y.dataSync(), rows.grad!.dataSync(), ...bank.parameters().map((p) => p.grad!.dataSync())];
        });
      const a = run(false);
      const b = run(true);
      const [atol, rtol] = dtype === 'f64' ? [1e-12, 1e-10] : [2e-5, 2e-4];
      a.forEach((v, i) => assertClose(b[i]!, v, atol, rtol, `output ${i}`));
    }
  });

  test('MoELayer: fused and reference agree end to end (router grads through the top-k weights)', () => {
    setBackend('native');
    const input: MoEConfigInput = {
      hiddenSize: 16,
      router: { numExperts: 5, topK: 2, renormalize: 'sum' },
      experts: { intermediateSize: 12 },
      shared: { intermediateSize: 8, gate: 'sigmoid' },
      losses: { lbWeight: 0.1, zLossWeight: 0.01 },
    };
    const run = (on: boolean) =>
      withKernels(on, () => {
        const layer = new MoELayer(moeConfig(input), { dtype: 'f64', generator: new Generator(3) });
        const gen = new Generator(9);
        const x = rand([2, 10, 16], 'f64', gen).requiresGrad_();
        const dy = rand([2, 10, 16], 'f64', gen);
        const y = layer.forward(x);
        y.backward(dy);
        return [y.dataSync(), x.grad!.dataSync(), ...layer.parameters().map((p) => p.grad!.dataSync())];
      });
    const a = run(false);
    const b = run(true);
    a.forEach((v, i) => assertClose(b[i]!, v, 1e-12, 1e-10, `tensor ${i}`));
  });

  test('groupedMatmul: native grouped GEMM matches the per-segment matmuls (both orientations, empty segments)', () => {
    setBackend('native');
    for (const dtype of ['f64', 'f32'] as FloatDType[]) {
      for (const transB of [true, false]) {
        const gen = new Generator(5);
        // big enough (S·in·out >= 32^3) for the native grouped GEMM to take it
        const seg = Int32Array.of(0, 0, 30, 30, 140, 141);
        const x = rand([141, 37], dtype, gen).requiresGrad_();
        const w = rand(transB ? [5, 29, 37] : [5, 37, 29], dtype, gen).requiresGrad_();
        const dy = rand([141, 29], dtype, gen);
        const run = (on: boolean) =>
          withKernels(on, () => {
            x.grad = null;
            w.grad = null;
            const y = groupedMatmul(x, w, seg, { transB });
            sum(mul(y, dy)).backward();
            return [y.dataSync(), x.grad!.dataSync(), w.grad!.dataSync()];
          });
        const a = run(false);
        const b = run(true);
        const [atol, rtol] = dtype === 'f64' ? [1e-12, 1e-10] : [2e-5, 2e-4];
        a.forEach((v, i) => assertClose(b[i]!, v, atol, rtol, `${dtype} transB=${transB} tensor ${i}`));
      }
    }
  });

  test('moeGemmSwiglu / moeGemmRows (K-stacked) reject bad arguments with the field, the value and what is allowed', () => {
    const k = moeAddonKernels()!;
    const f = (n: number) => new Float32Array(n);
    // 2 rows, one expert, i = 3, k = 2: gate / up stored [3, 2] (bTrans), gu [2, 6], h [2, 3]
    const call = (o: { upOff?: number; ldgu?: number; h?: Float32Array | Float64Array; bUp?: Float32Array }) =>
      k.moeGemmSwiglu({
        a: f(4),
        aIdx: null,
        lda: 2,
        bGate: f(6),
        bUp: o.bUp ?? f(6),
        bTrans: true,
        bExpertStride: 6,
        ldb: 2,
        seg: Int32Array.of(0, 2),
        gu: f(12),
        ldgu: o.ldgu ?? 6,
        upOff: o.upOff ?? 3,
        h: o.h ?? f(6),
        i: 3,
        k: 2,
      });
    assert.doesNotThrow(() => call({}));
    assert.throws(() => call({ upOff: 2 }), {
      name: 'RangeError',
      message: /up columns \[upOff, upOff \+ i\) must follow the gate columns.*upOff 2, i 3, ldgu 6/,
    });
    assert.throws(() => call({ ldgu: 5 }), { name: 'RangeError', message: /upOff 3, i 3, ldgu 5/ });
    assert.throws(() => call({ h: f(5) }), { name: 'RangeError', message: /moeGemmSwiglu: h has 5 elements, needs 6/ });
    assert.throws(() => call({ bUp: f(5) }), { name: 'RangeError', message: /moeGemmSwiglu: bUp has 5 elements, needs 6/ });
    assert.throws(() => call({ h: new Float64Array(6) }), { name: 'TypeError', message: /moeGemmSwiglu: h must be a Float32Array/ });
    // the K-stacked rows GEMM: 2 rows, k = 4 split 2 + 2, n = 3, B parts stored [3, 2] (bTrans)
    const stacked = (kSplit: number, b2 = f(6)) =>
      k.moeGemmRows({
        a: f(8),
        aIdx: null,
        scale: null,
        lda: 4,
        b: f(6),
        b2,
        kSplit,
        bTrans: true,
        bExpertStride: 6,
        ldb: 2,
        seg: Int32Array.of(0, 2),
        c: f(6),
        ldc: 3,
        n: 3,
        k: 4,
        accumulate: false,
      });
    assert.doesNotThrow(() => stacked(2));
    assert.throws(() => stacked(0), { name: 'RangeError', message: /moeGemmRows: kSplit is 0, must be in \[1, k\) = \[1, 4\)/ });
    assert.throws(() => stacked(4), { name: 'RangeError', message: /kSplit is 4/ });
    assert.throws(() => stacked(2, f(5)), { name: 'RangeError', message: /moeGemmRows: b2 has 5 elements, needs 6/ });
  });

  test('moeBatchBegin / moeBatchRun: queued GEMMs run at moeBatchRun and match the same calls one by one', () => {
    const k = moeAddonKernels()!;
    for (const Arr of [Float32Array, Float64Array]) {
      const gen = new Generator(11);
      const fill = (n: number) => new Arr(n).map(() => gen.uniform() - 0.5);
      // 3 experts (one empty) over 150 rows; rows GEMM [S, 40] · B_e [40, 24], wgrad C_e [40, 24]
      const seg = Int32Array.of(0, 70, 70, 150);
      const idx = Int32Array.from({ length: 150 }, (_, r) => (r * 7) % 90);
      const x = fill(90 * 40),
        b = fill(3 * 40 * 24),
        g = fill(150 * 24);
      const rows = () => new Arr(150 * 24),
        wg = () => new Arr(3 * 40 * 24);
      const rowsOne = rows(),
        wgOne = wg();
      k.moeGemmRows({
        a: x,
        aIdx: idx,
        scale: null,
        lda: 40,
        b,
        b2: null,
        kSplit: 0,
        bTrans: false,
        bExpertStride: 40 * 24,
        ldb: 24,
        seg,
        c: rowsOne,
        ldc: 24,
        n: 24,
        k: 40,
        accumulate: false,
      });
      k.moeGemmWgrad({ a: x, aIdx: idx, scale: null, lda: 40, b: g, bIdx: null, ldb: 24, seg, c: wgOne, m: 40, n: 24, accumulate: false });
      const rowsB = rows(),
        wgB = wg();
      k.moeBatchBegin();
      k.moeGemmRows({
        a: x,
        aIdx: idx,
        scale: null,
        lda: 40,
        b,
        b2: null,
        kSplit: 0,
        bTrans: false,
        bExpertStride: 40 * 24,
        ldb: 24,
        seg,
        c: rowsB,
        ldc: 24,
        n: 24,
        k: 40,
        accumulate: false,
      });
      k.moeGemmWgrad({ a: x, aIdx: idx, scale: null, lda: 40, b: g, bIdx: null, ldb: 24, seg, c: wgB, m: 40, n: 24, accumulate: false });
      assert.ok(rowsB.every((v) => v === 0) && wgB.every((v) => v === 0), 'nothing runs before moeBatchRun');
      assert.throws(() => k.moeBatchBegin(), { message: /moeBatchBegin: a batch is already open/ });
      k.moeBatchRun();
      assert.deepEqual(rowsB, rowsOne, `${Arr.name} rows GEMM`);
      assert.deepEqual(wgB, wgOne, `${Arr.name} wgrad GEMM`);
      assert.ok(wgOne.some((v) => v !== 0));
    }
    assert.throws(() => k.moeBatchRun(), { message: /moeBatchRun: no batch is open/ });
  });

  test('moeFuseBegin / moeFuseRun: stages run block by block at moeFuseRun and match the same calls one by one, for any thread count', () => {
    const k = moeAddonKernels()!;
    const addon = loadNativeAddon().addon!;
    const threads = addon.getNumThreads();
    after(() => addon.setNumThreads(threads));
    for (const Arr of [Float32Array, Float64Array]) {
      const gen = new Generator(13);
      const fill = (n: number) => new Arr(n).map(() => gen.uniform() - 0.5);
      // 4 experts (one empty) over 301 rows: thread parts start inside experts, blocks have tails.
      // Stage 1: r = x[idx] · B_e [40, 24]; stage 2 (row pass): SwiGLU backward of gu [S, 24]
      // against r; stage 3: C_e = x[idx]ᵀ · dgu (wgrad, [40, 24]); stage 4: out = dgu · B2_e.
      const seg = Int32Array.of(0, 170, 170, 171, 301);
      const S = 301;
      const idx = Int32Array.from({ length: S }, (_, r) => (r * 7) % 90);
      const x = fill(90 * 40),
        b = fill(4 * 40 * 24),
        b2 = fill(4 * 24 * 16),
        gu0 = fill(S * 24),
        w = fill(S);
      // local: r (written by stage 1, read and rewritten by stage 2) is block-local
      const run = (fuse: boolean, local = false) => {
        const r = new Arr(S * 12),
          gu = gu0.slice(),
          dw = new Arr(S),
          c = new Arr(4 * 40 * 24).fill(7),
          out = new Arr(S * 16);
        if (fuse) k.moeFuseBegin();
        if (local) k.moeFuseLocal({ a: r, rowElems: 12 });
        k.moeGemmRows({
          a: x,
          aIdx: idx,
          scale: null,
          lda: 40,
          b,
          b2: null,
          kSplit: 0,
          bTrans: false,
          bExpertStride: 40 * 24,
          ldb: 24,
          seg,
          c: r,
          ldc: 12,
          n: 12,
          k: 40,
          accumulate: false,
        });
        k.moeActBackward({
          kind: 'swiglu',
          gu,
          ld: 24,
          gateOff: 0,
          upOff: 12,
          colStride: 1,
          s: S,
          i: 12,
          dy: r,
          w,
          dgu: gu,
          hout: r,
          dw,
          limit: 0,
          alpha: 0,
        });
        k.moeGemmWgrad({ a: x, aIdx: idx, scale: null, lda: 40, b: gu, bIdx: null, ldb: 24, seg, c, m: 40, n: 24, accumulate: false });
        k.moeGemmRows({
          a: gu,
          aIdx: null,
          scale: null,
          lda: 24,
          b: b2,
          b2: null,
          kSplit: 0,
          bTrans: false,
          bExpertStride: 24 * 16,
          ldb: 16,
          seg,
          c: out,
          ldc: 16,
          n: 16,
          k: 24,
          accumulate: false,
        });
        if (fuse) {
          assert.ok(out.every((v) => v === 0) && dw.every((v) => v === 0), 'nothing runs before moeFuseRun');
          assert.throws(() => k.moeFuseBegin(), { message: /moeFuseBegin: a fusion is already open/ });
          assert.throws(() => k.moeBatchBegin(), { message: /moeBatchBegin: a fusion is open/ });
          k.moeFuseRun();
        }
        return { r, gu, dw, c, out };
      };
      const one = run(false);
      assert.ok(
        one.c.slice(40 * 24, 2 * 40 * 24).every((v) => v === 0),
        'the empty expert gets zeros',
      );
      for (const n of [1, 2, 3, 7]) {
        addon.setNumThreads(n);
        const got = run(true);
        const tol = Arr === Float32Array ? 1e-5 : 1e-12;
        for (const key of ['r', 'gu', 'dw', 'c', 'out'] as const)
          assertClose(got[key], one[key], tol, tol, `${Arr.name} ${n} threads: ${key}`);
        const local = run(true, true);
        assert.ok(
          local.r.every((v) => v === 0),
          `${Arr.name} ${n} threads: a block-local array is left unwritten`,
        );
        for (const key of ['gu', 'dw', 'c', 'out'] as const)
          assert.deepEqual(local[key], got[key], `${Arr.name} ${n} threads, r block-local: ${key}`);
      }
      addon.setNumThreads(threads);
    }
    assert.throws(() => k.moeFuseRun(), { message: /moeFuseRun: no fusion is open/ });
  });

  test('moeFuseRun: blocks taken from the back of another part (or left there, MOEKIT_FUSE_STEAL=N) give the same bits as none taken', () => {
    const k = moeAddonKernels()!;
    const addon = loadNativeAddon().addon!;
    const threads = addon.getNumThreads();
    const knob = process.env.MOEKIT_FUSE_STEAL;
    after(() => {
      addon.setNumThreads(threads);
      if (knob === undefined) delete process.env.MOEKIT_FUSE_STEAL;
      else process.env.MOEKIT_FUSE_STEAL = knob;
    });
    for (const Arr of [Float32Array, Float64Array]) {
      const gen = new Generator(29);
      const fill = (n: number) => new Arr(n).map(() => gen.uniform() - 0.5);
      // 5 experts (one empty) over 743 rows: several 64-row blocks per part, parts that start
      // inside an expert, an expert of one row. Stages: r = x[idx]·B_e (block-local), SwiGLU
      // backward of gu against r, two weight-gradient GEMMs (one accumulating into 7s), out = dgu·B2_e.
      const seg = Int32Array.of(0, 300, 300, 301, 520, 743);
      const S = 743;
      const idx = Int32Array.from({ length: S }, (_, r) => (r * 11) % 200);
      const x = fill(200 * 40),
        b = fill(5 * 40 * 24),
        b2 = fill(5 * 24 * 16),
        gu0 = fill(S * 24),
        w = fill(S);
      const run = (steal: string) => {
        process.env.MOEKIT_FUSE_STEAL = steal;
        const r = new Arr(S * 12),
          gu = gu0.slice(),
          dw = new Arr(S),
          out = new Arr(S * 16);
        const c = new Arr(5 * 40 * 24).fill(7),
          c2 = new Arr(5 * 40 * 24).fill(7);
        k.moeFuseBegin();
        k.moeFuseLocal({ a: r, rowElems: 12 });
        k.moeGemmRows({
          a: x,
          aIdx: idx,
          scale: null,
          lda: 40,
          b,
          b2: null,
          kSplit: 0,
          bTrans: false,
          bExpertStride: 40 * 24,
          ldb: 24,
          seg,
          c: r,
          ldc: 12,
          n: 12,
          k: 40,
          accumulate: false,
        });
        k.moeActBackward({
          kind: 'swiglu',
          gu,
          ld: 24,
          gateOff: 0,
          upOff: 12,
          colStride: 1,
          s: S,
          i: 12,
          dy: r,
          w,
          dgu: gu,
          hout: r,
          dw,
          limit: 0,
          alpha: 0,
        });
        k.moeGemmWgrad({ a: x, aIdx: idx, scale: null, lda: 40, b: gu, bIdx: null, ldb: 24, seg, c, m: 40, n: 24, accumulate: false });
        k.moeGemmWgrad({ a: x, aIdx: idx, scale: w, lda: 40, b: gu, bIdx: null, ldb: 24, seg, c: c2, m: 40, n: 24, accumulate: true });
        k.moeGemmRows({
          a: gu,
          aIdx: null,
          scale: null,
          lda: 24,
          b: b2,
          b2: null,
          kSplit: 0,
          bTrans: false,
          bExpertStride: 24 * 16,
          ldb: 16,
          seg,
          c: out,
          ldc: 16,
          n: 16,
          k: 24,
          accumulate: false,
        });
        k.moeFuseRun();
        return { gu, dw, c, c2, out };
      };
      for (const n of [1, 2, 3, 7]) {
        addon.setNumThreads(n);
        const none = run('0');
        assert.ok(none.c2.some((v) => v !== 7) && none.c.some((v) => v !== 0));
        // '': taken when a thread runs out; N: each part's last N blocks (all of them for 1000)
        for (const steal of ['', '1', '3', '1000']) {
          const got = run(steal);
          for (const key of ['gu', 'dw', 'c', 'c2', 'out'] as const)
            assert.deepEqual(got[key], none[key], `${Arr.name} ${n} threads, MOEKIT_FUSE_STEAL=${steal}: ${key}`);
        }
      }
    }
  });

  test('moeFuseBegin / moeFuseRun reject what cannot run block by block', () => {
    const k = moeAddonKernels()!;
    const f = (n: number) => new Float32Array(n);
    const rows = (seg: Int32Array) =>
      k.moeGemmRows({
        a: f(40),
        aIdx: null,
        scale: null,
        lda: 4,
        b: f(2 * 16),
        b2: null,
        kSplit: 0,
        bTrans: false,
        bExpertStride: 16,
        ldb: 4,
        seg,
        c: f(40),
        ldc: 4,
        n: 4,
        k: 4,
        accumulate: false,
      });
    k.moeFuseBegin();
    rows(Int32Array.of(0, 4, 10));
    assert.throws(() => rows(Int32Array.of(0, 5, 10)), { message: /a fused stage's seg must equal the other stages'/ });
    assert.throws(() => k.moeCombine({ y: f(40), ldy: 4, row: Int32Array.of(0), w: null, t: 1, k: 1, h: 4, out: f(4) }), {
      message: /moeCombine: not row-local/,
    });
    k.moeActBackward({
      kind: 'swiglu',
      gu: f(80),
      ld: 8,
      gateOff: 0,
      upOff: 4,
      colStride: 1,
      s: 9,
      i: 4,
      dy: f(36),
      w: null,
      dgu: f(80),
      hout: null,
      dw: null,
      limit: 0,
      alpha: 0,
    });
    assert.throws(() => k.moeFuseRun(), { message: /moeFuseRun: a fused row pass must cover the segments' rows/ });
    assert.throws(() => k.moeFuseRun(), { message: /no fusion is open/ }, 'a failed run closes the fusion');
    k.moeFuseBegin();
    k.moeActBackward({
      kind: 'swiglu',
      gu: f(80),
      ld: 8,
      gateOff: 0,
      upOff: 4,
      colStride: 1,
      s: 10,
      i: 4,
      dy: f(40),
      w: null,
      dgu: f(80),
      hout: null,
      dw: null,
      limit: 0,
      alpha: 0,
    });
    assert.throws(() => k.moeFuseRun(), { message: /needs at least one grouped GEMM/ });
    k.moeBatchBegin();
    assert.throws(() => k.moeFuseBegin(), { message: /moeFuseBegin: a batch is open/ });
    k.moeBatchRun();
  });

  test('moeFuseLocal: a block-local array must be reached by sorted row with its declared row length', () => {
    const k = moeAddonKernels()!;
    const f = (n: number) => new Float32Array(n);
    const seg = Int32Array.of(0, 4, 10);
    const x = f(40),
      w = f(2 * 16),
      c = f(40),
      idx = Int32Array.from({ length: 10 }, (_, r) => 9 - r);
    assert.throws(() => k.moeFuseLocal({ a: c, rowElems: 4 }), { message: /moeFuseLocal: no fusion is open/ });
    // the grouped GEMM each case runs: x [10, 4] times w's segments into c
    const xTimesW = {
      a: x,
      aIdx: null,
      scale: null,
      lda: 4,
      b: w,
      b2: null,
      kSplit: 0,
      bTrans: false,
      bExpertStride: 16,
      ldb: 4,
      seg,
      c,
      ldc: 4,
      n: 4,
      k: 4,
      accumulate: false,
    };
    // each case: what to declare block-local, then the stage that reaches it
    const cases: [string, () => void, RegExp][] = [
      [
        'read through an index',
        () => {
          k.moeFuseLocal({ a: x, rowElems: 4 });
          k.moeGemmRows({ ...xTimesW, aIdx: idx });
        },
        /cannot be read through a row index/,
      ],
      [
        'another row length',
        () => {
          k.moeFuseLocal({ a: c, rowElems: 2 });
          k.moeGemmRows(xTimesW);
        },
        /row length other than the one declared/,
      ],
      [
        'a weight',
        () => {
          k.moeFuseLocal({ a: w, rowElems: 4 });
          k.moeGemmRows(xTimesW);
        },
        /must be accessed by sorted row/,
      ],
      [
        'a weight gradient',
        () => {
          k.moeFuseLocal({ a: w, rowElems: 4 });
          k.moeGemmWgrad({ a: x, aIdx: null, scale: null, lda: 4, b: c, bIdx: null, ldb: 4, seg, c: w, m: 4, n: 4, accumulate: false });
        },
        /must be accessed by sorted row/,
      ],
    ];
    for (const [what, stage, message] of cases) {
      k.moeFuseBegin();
      stage();
      assert.throws(() => k.moeFuseRun(), { message }, what);
      assert.throws(() => k.moeFuseRun(), { message: /no fusion is open/ }, `${what}: a failed run closes the fusion`);
    }
    k.moeFuseBegin();
    k.moeFuseLocal({ a: c, rowElems: 4 });
    assert.throws(() => k.moeFuseLocal({ a: c.subarray(4), rowElems: 4 }), {
      message: /moeFuseLocal: block-local arrays must not overlap/,
    });
    assert.throws(() => k.moeFuseLocal({ a: x, rowElems: 0 }), { message: /moeFuseLocal: rowElems/ });
    assert.throws(() => k.moeFuseLocal({ a: x.subarray(0, 2), rowElems: 4 }), { message: /must hold at least one row/ });
    k.moeGemmRows(xTimesW);
    k.moeFuseRun();
  });

  test('MOEKIT_MOE_FUSED=0 falls back to the reference; GELU banks are covered', () => {
    setBackend('native');
    const gen = new Generator(1);
    const x = rand([4, 6], 'f32', gen);
    const swi = new ExpertBank(2, 6, parseExpertConfig({ kind: 'swiglu', intermediateSize: 4 }), { generator: gen });
    const gelu = new ExpertBank(2, 6, parseExpertConfig({ kind: 'gelu', intermediateSize: 4 }), { generator: gen });
    assert.ok(withKernels(true, () => bankKernels(x, swi, swi.cfg)));
    assert.equal(
      withKernels(false, () => bankKernels(x, swi, swi.cfg)),
      null,
    );
    assert.ok(withKernels(true, () => bankKernels(x, gelu, gelu.cfg)));
  });
});

describe('fused MoE on the reference backend', () => {
  test('never applies', () => {
    setBackend('reference');
    const gen = new Generator(1);
    const x = rand([4, 6], 'f32', gen);
    const swi = new ExpertBank(2, 6, parseExpertConfig({ kind: 'swiglu', intermediateSize: 4 }), { generator: gen });
    assert.equal(bankKernels(x, swi, swi.cfg), null);
    setBackend(availableBackends()[0]!);
  });
});
