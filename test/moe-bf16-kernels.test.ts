// The grouped GEMMs with bf16 operands (native/moe/moe_bf16.c: AVX512_BF16 pair packs and the
// VDPBF16PS kernel, or bf16 widened into the f32 packs) against an f64 computation of the same
// products on every ISA this CPU runs, and a bf16 MoELayer on its kernel path (the experts
// node over those GEMMs) against the engine-op composition in bf16: output and every gradient.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { loadNativeAddon, type NativeAddon } from '../src/backend/native/addon.js';
import { moeAddonKernels } from '../src/backend/native/moe-addon.js';
import { availableBackends, getBackend, setBackend } from '../src/backend/index.js';
import { BF16Array, type Storage } from '../src/backend/types.js';
import { narrowToHalf, widenHalfToF32 } from '../src/io/half.js';
import { type MoEConfigInput, moeConfig } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { ExpertBank } from '../src/moe/experts.js';
import { bf16Slices } from '../src/moe/kernel-path/experts-node.js';
import { bankKernels } from '../src/moe/execution/plan.js';
import { parseExpertConfig } from '../src/moe/config.js';
import { fromArray } from '../src/ops/creation.js';
import { manualSeed, randn } from '../src/index.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { withAutocast } from '../src/amp/autocast.js';
import { withEnv } from './helpers/env.js';
import { onEachIsa } from './helpers/isa.js';

const loaded = loadNativeAddon();
const addon = loaded.addon as NativeAddon;
const skip = !availableBackends().includes('native') ? `native addon not loaded: ${loaded.addon ? '' : loaded.reason}` : false;
const cpuHasBf16 = (() => {
  try {
    return /\bavx512_bf16\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
})();

/** The ISAs to force: the detected one and every one below it (the pair kernel runs under avx512 where the CPU has AVX512_BF16). */

const values = (gen: Generator, n: number) => Float32Array.from({ length: n }, () => 2 * gen.uniform() - 1);
const bf16 = (v: Float32Array) => narrowToHalf(v, 'bf16', new BF16Array(v.length)) as BF16Array;
/** An operand in bf16 or f32, and its values as numbers. */
function operand(gen: Generator, n: number, half: boolean): { s: Storage; v: Float32Array } {
  const v = values(gen, n);
  if (!half) return { s: v, v };
  const s = bf16(v);
  return { s, v: widenHalfToF32(s, 'bf16') };
}

/**
 * got vs sum_p x_p·y_p: an operand that is f32 or scaled may be rounded to bf16 while packing
 * (two roundings: 2^-7 of Σ|x_p·y_p|), and f32 accumulation adds k·2^-24 of it.
 */
function assertProducts(got: number, want: number, mag: number, k: number, what: string): void {
  const tol = mag * (2 ** -7 + k * 2 ** -24) + 1e-30;
  assert.ok(Math.abs(got - want) <= tol, `${what}: ${got} vs ${want} (tol ${tol})`);
}

interface RowsCase {
  name: string;
  seg: number[];
  n: number;
  k: number;
  trans: boolean;
  aHalf: boolean;
  bHalf: boolean;
  gather: boolean;
  scale: boolean;
  kSplit?: number;
}

const ROWS_CASES: RowsCase[] = [
  {
    name: 'odd sizes, an empty expert, gathered',
    seg: [0, 5, 5, 18, 19],
    n: 45,
    k: 37,
    trans: false,
    aHalf: true,
    bHalf: true,
    gather: true,
    scale: false,
  },
  {
    name: 'out-in weights, scaled f32 rows',
    seg: [0, 0, 23, 40],
    n: 33,
    k: 29,
    trans: true,
    aHalf: false,
    bHalf: true,
    gather: false,
    scale: true,
  },
  {
    name: 'stacked along K at an odd split',
    seg: [0, 7, 7, 30],
    n: 17,
    k: 41,
    trans: true,
    aHalf: false,
    bHalf: true,
    gather: false,
    scale: false,
    kSplit: 19,
  },
  {
    name: 'K over several blocks, odd',
    seg: [0, 9, 21],
    n: 35,
    k: 1703,
    trans: false,
    aHalf: true,
    bHalf: true,
    gather: true,
    scale: true,
  },
  { name: 'bf16 rows, f32 weights', seg: [0, 3, 16], n: 64, k: 64, trans: false, aHalf: true, bHalf: false, gather: false, scale: false },
];

function checkRows(c: RowsCase, isa: string): void {
  const gen = new Generator(c.k * 31 + c.n);
  const E = c.seg.length - 1;
  const S = c.seg[E]!;
  const T = 11 + S;
  const ks = c.kSplit ?? c.k;
  const kb = Math.max(ks, c.k - ks);
  const ldb = c.trans ? kb : c.n;
  const es = c.trans ? c.n * kb : kb * c.n;
  const a = operand(gen, (c.gather ? T : S) * c.k, c.aHalf);
  const b = operand(gen, E * es, c.bHalf);
  const b2 = c.kSplit ? operand(gen, E * es, c.bHalf) : null;
  const aIdx = c.gather ? Int32Array.from({ length: S }, (_, r) => (r * 7 + 3) % T) : null;
  const scale = c.scale ? values(gen, S) : null;
  const out = new Float32Array(S * c.n).fill(Number.NaN);
  getBackend().moe!.gemmRows({
    a: { data: a.s, ld: c.k },
    aIdx,
    scale,
    b: { data: b.s, ld: ldb, trans: c.trans, expertStride: es },
    b2: b2 ? { data: b2.s, kSplit: ks } : null,
    seg: Int32Array.from(c.seg),
    c: { data: out, ld: c.n },
    n: c.n,
    k: c.k,
    accumulate: false,
  });
  for (let e = 0; e < E; e++)
    for (let r = c.seg[e]!; r < c.seg[e + 1]!; r++)
      for (let j = 0; j < c.n; j++) {
        let s = 0;
        let mag = 0;
        for (let p = 0; p < c.k; p++) {
          const [src, q] = p < ks ? [b.v, p] : [b2!.v, p - ks];
          const bv = src[e * es + (c.trans ? j * ldb + q : q * ldb + j)]!;
          const x = (scale ? scale[r]! : 1) * a.v[(aIdx ? aIdx[r]! : r) * c.k + p]! * bv;
          s += x;
          mag += Math.abs(x);
        }
        assertProducts(out[r * c.n + j]!, s, mag, c.k, `${isa} ${c.name} [${r}, ${j}]`);
      }
}

interface WgradCase {
  name: string;
  seg: number[];
  m: number;
  n: number;
  aHalf: boolean;
  bHalf: boolean;
  scale: boolean;
}

const WGRAD_CASES: WgradCase[] = [
  { name: 'odd segments and an empty expert', seg: [0, 1, 1, 14, 64], m: 37, n: 45, aHalf: true, bHalf: false, scale: true },
  { name: 'a segment over several K blocks', seg: [0, 1601, 1610], m: 19, n: 33, aHalf: true, bHalf: true, scale: false },
  { name: 'f32 rows, bf16 gathered columns', seg: [0, 0, 27], m: 40, n: 16, aHalf: false, bHalf: true, scale: false },
  { name: 'f32 operands (a bf16 c only)', seg: [0, 900, 903, 1700], m: 30, n: 35, aHalf: false, bHalf: false, scale: true },
];

function checkWgrad(c: WgradCase, isa: string): void {
  const gen = new Generator(c.m * 13 + c.n);
  const E = c.seg.length - 1;
  const S = c.seg[E]!;
  const T = S + 5;
  const a = operand(gen, S * c.m, c.aHalf);
  const b = operand(gen, T * c.n, c.bHalf);
  const bIdx = Int32Array.from({ length: S }, (_, r) => (r * 5 + 1) % T);
  const scale = c.scale ? values(gen, S) : null;
  const out = new Float32Array(E * c.m * c.n).fill(Number.NaN);
  const outBf16 = new BF16Array(out.length).fill(0x7fc1); // a NaN no sum rounds to: every element must be written
  for (const dst of [out, outBf16])
    getBackend().moe!.gemmWgrad({
      a: { data: a.s, ld: c.m },
      aIdx: null,
      scale,
      b: { data: b.s, ld: c.n },
      bIdx,
      seg: Int32Array.from(c.seg),
      c: dst,
      m: c.m,
      n: c.n,
      accumulate: false,
    });
  // a bf16 c: the same f32 sums, each rounded once by the engine cast, bit for bit
  const want = bf16(out);
  for (let q = 0; q < out.length; q++)
    if (outBf16[q] !== want[q]) assert.fail(`${isa} ${c.name}: bf16 c[${q}] = ${outBf16[q]} vs the f32 sum rounded ${want[q]}`);
  for (let e = 0; e < E; e++)
    for (let i = 0; i < c.m; i++)
      for (let j = 0; j < c.n; j++) {
        let s = 0;
        let mag = 0;
        for (let r = c.seg[e]!; r < c.seg[e + 1]!; r++) {
          const x = (scale ? scale[r]! : 1) * a.v[r * c.m + i]! * b.v[bIdx[r]! * c.n + j]!;
          s += x;
          mag += Math.abs(x);
        }
        assertProducts(out[(e * c.m + i) * c.n + j]!, s, mag, c.seg[e + 1]! - c.seg[e]!, `${isa} ${c.name} [${e}, ${i}, ${j}]`);
      }
}

describe('grouped GEMMs over bf16 operands', { skip }, () => {
  const prev = getBackend().name;
  after(() => setBackend(prev as 'native'));
  test(`gemmRows on every ISA (${cpuHasBf16 ? 'AVX512_BF16 pair kernel under avx512' : 'no AVX512_BF16 here: widened packs'}) against f64`, () => {
    setBackend('native');
    onEachIsa(addon, (isa) => {
      for (const c of ROWS_CASES) checkRows(c, isa);
    });
  });
  test('gemmWgrad on every ISA against f64, and into a bf16 c bit for bit as its f32 sums rounded', () => {
    setBackend('native');
    onEachIsa(addon, (isa) => {
      for (const c of WGRAD_CASES) checkWgrad(c, isa);
    });
    setBackend('reference');
    checkWgrad(WGRAD_CASES[0]!, 'reference');
  });
  test('a bf16 c with accumulate is refused with one line', () => {
    setBackend('reference');
    assert.throws(
      () =>
        getBackend().moe!.gemmWgrad({
          a: { data: new Float32Array(4), ld: 2 },
          aIdx: null,
          scale: null,
          b: { data: new Float32Array(4), ld: 2 },
          bIdx: null,
          seg: Int32Array.of(0, 2),
          c: new BF16Array(4),
          m: 2,
          n: 2,
          accumulate: true,
        }),
      /gemmWgrad: a bf16 c is written, not accumulated: accumulate must be false/,
    );
    setBackend('native');
    assert.throws(
      () =>
        moeAddonKernels()!.moeGemmWgrad({
          a: new Float32Array(4),
          aIdx: null,
          scale: null,
          lda: 2,
          b: new Float32Array(4),
          bIdx: null,
          ldb: 2,
          seg: Int32Array.of(0, 2),
          c: new Uint16Array(4) as never,
          m: 2,
          n: 2,
          accumulate: true,
        }),
      /moeGemmWgrad: a bf16 \(Uint16Array\) c is written, not accumulated: accumulate must be false/,
    );
  });
  test('a bf16 operand beside f64 floats is refused with one line', () => {
    setBackend('native');
    assert.throws(
      () =>
        moeAddonKernels()!.moeGemmRows({
          a: new Uint16Array(4) as never,
          aIdx: null,
          scale: null,
          lda: 2,
          b: new Float64Array(4),
          b2: null,
          kSplit: 0,
          bTrans: false,
          bExpertStride: 4,
          ldb: 2,
          seg: Int32Array.of(0, 2),
          c: new Float64Array(4),
          ldc: 2,
          n: 2,
          k: 2,
          accumulate: false,
        }),
      /moeGemmRows: .*b/,
    );
  });
});

/** Output and gradients of a bf16 layer (f32 values), with MOEKIT_MOE_PATH = path. */
function bf16Layer(input: MoEConfigInput, T: number, path: 'auto' | 'reference') {
  return withEnv('MOEKIT_MOE_PATH', path, () => {
    manualSeed(7);
    const layer = new MoELayer(moeConfig(input));
    layer.to('bf16');
    const x = randn([T, input.hiddenSize!]).to('bf16').requiresGrad_();
    const dy = randn([T, input.hiddenSize!]).to('bf16');
    const y = layer.forward(x);
    y.backward(dy);
    const f = (t: Tensor) => t.to('f32').dataSync() as Float32Array;
    return {
      summary: layer.executionPlan.summary,
      values: [['y', f(y)], ['dx', f(x.grad!)], ...layer.namedParameters().map(([name, p]) => [`d${name}`, f(p.grad!)] as const)] as [
        string,
        Float32Array,
      ][],
    };
  });
}

/** ||got - want|| <= tol·||want|| per tensor (bf16 on both sides, rounded at different places). */
function assertNear(got: [string, Float32Array][], want: [string, Float32Array][], tol: number, what: string): void {
  assert.deepEqual(
    got.map(([n]) => n),
    want.map(([n]) => n),
  );
  got.forEach(([name, g], i) => {
    const w = want[i]![1];
    let d = 0;
    let nw = 0;
    for (let q = 0; q < w.length; q++) {
      d += (g[q]! - w[q]!) ** 2;
      nw += w[q]! ** 2;
    }
    assert.ok(Number.isFinite(d) && Math.sqrt(d) <= tol * Math.sqrt(nw), `${what} ${name}: relative error ${Math.sqrt(d / nw)} > ${tol}`);
  });
}

const LAYER_CASES: { name: string; T: number; input: MoEConfigInput }[] = [
  {
    name: 'SwiGLU, an expert left empty',
    T: 37,
    input: { hiddenSize: 40, router: { numExperts: 9, topK: 2, renormalize: 'sum' }, experts: { kind: 'swiglu', intermediateSize: 24 } },
  },
  {
    name: 'capacity drops, top-3, fused out-in weights',
    T: 29,
    input: {
      hiddenSize: 33,
      router: { numExperts: 4, topK: 3 },
      experts: { kind: 'swiglu', intermediateSize: 19, layout: 'fused', orientation: 'out-in' },
      dispatch: { capacityFactor: 0.5, capacityMultiple: 1 },
    },
  },
  {
    name: 'GELU, top-1',
    T: 21,
    input: { hiddenSize: 18, router: { numExperts: 3, topK: 1 }, experts: { kind: 'gelu', intermediateSize: 35 } },
  },
];

/** fn() with the bf16 node's row slices shrunk, so small shapes run several. */
function withSmallSlices<T>(fn: () => T): T {
  const prev = { ...bf16Slices };
  Object.assign(bf16Slices, { rows: 7 });
  try {
    return fn();
  } finally {
    Object.assign(bf16Slices, prev);
  }
}

describe('a bf16 MoELayer on its kernel path against the bf16 composition', { skip }, () => {
  const prev = getBackend().name;
  after(() => setBackend(prev as 'native'));
  for (const c of LAYER_CASES)
    test(c.name, () => {
      setBackend('native');
      const want = bf16Layer(c.input, c.T, 'reference');
      assert.match(want.summary, /reference composition/);
      onEachIsa(addon, (isa) => {
        const got = bf16Layer(c.input, c.T, 'auto');
        assert.match(got.summary, /experts: one kernel node/);
        assertNear(got.values, want.values, 0.02, `${isa} ${c.name}`);
        const sliced = withSmallSlices(() => bf16Layer(c.input, c.T, 'auto'));
        assertNear(sliced.values, want.values, 0.02, `${isa} ${c.name}, small slices`);
      });
    });

  test('ExpertBank.forward on expert-contiguous bf16 rows (an empty expert), in small slices', () => {
    setBackend('native');
    const seg = Int32Array.of(0, 9, 9, 30, 41);
    const cfg = parseExpertConfig({ kind: 'swiglu', intermediateSize: 13 }, 'experts');
    const run = (path: 'auto' | 'reference') =>
      withEnv('MOEKIT_MOE_PATH', path, () =>
        withSmallSlices(() => {
          const bank = new ExpertBank(4, 10, cfg, { generator: new Generator(3), dtype: 'bf16' });
          const rows = randn([41, 10], { generator: new Generator(4) })
            .to('bf16')
            .requiresGrad_();
          const exec = {
            numExperts: 4,
            numRows: 41,
            segOffsets: seg,
            rowsPerExpert: Int32Array.from({ length: 4 }, (_, e) => seg[e + 1]! - seg[e]!),
            rowExperts: fromArray(
              Int32Array.from({ length: 41 }, (_, r) => seg.findIndex((s) => s > r) - 1),
              [41],
            ),
          };
          assert.equal(bankKernels(rows, bank, cfg) !== null, path === 'auto');
          const y = bank.forward(rows, exec);
          y.backward(randn([41, 10], { generator: new Generator(5) }).to('bf16'));
          const f = (t: Tensor) => t.to('f32').dataSync() as Float32Array;
          return [['y', f(y)], ['drows', f(rows.grad!)], ...bank.namedParameters().map(([n, p]) => [`d${n}`, f(p.grad!)])] as [
            string,
            Float32Array,
          ][];
        }),
      );
    const want = run('reference');
    onEachIsa(addon, (isa) => assertNear(run('auto'), want, 0.02, `${isa} rows`));
  });
});

/** An f32 layer's output and f32 gradients under autocast bf16, with MOEKIT_MOE_PATH = path. */
function autocastLayer(input: MoEConfigInput, T: number, path: 'auto' | 'reference') {
  return withEnv('MOEKIT_MOE_PATH', path, () => {
    manualSeed(7);
    const layer = new MoELayer(moeConfig(input));
    const x = randn([T, input.hiddenSize!]).requiresGrad_();
    const dy = randn([T, input.hiddenSize!]);
    const y = withAutocast('bf16', () => layer.forward(x));
    y.backward(dy);
    const grads = layer.namedParameters().map(([name, p]) => {
      assert.equal(p.grad!.dtype, 'f32', `d${name} comes back to the f32 weight in f32`);
      return [`d${name}`, p.grad!.dataSync() as Float32Array] as const;
    });
    return {
      summary: withAutocast('bf16', () => layer.executionPlan.summary),
      dtype: y.dtype,
      values: [['y', y.dataSync() as Float32Array], ['dx', x.grad!.dataSync() as Float32Array], ...grads] as [string, Float32Array][],
    };
  });
}

describe('autocast bf16 over an f32 MoELayer: the bf16 experts node against the autocast composition', { skip }, () => {
  const prev = getBackend().name;
  after(() => setBackend(prev as 'native'));
  for (const c of LAYER_CASES.slice(0, 2))
    test(c.name, () => {
      setBackend('native');
      const want = autocastLayer(c.input, c.T, 'reference');
      assert.match(want.summary, /reference composition/);
      onEachIsa(addon, (isa) => {
        const got = autocastLayer(c.input, c.T, 'auto');
        assert.match(got.summary, /experts: one kernel node/);
        assert.match(got.summary, /autocast/);
        assert.equal(got.dtype, want.dtype);
        assertNear(got.values, want.values, 0.02, `${isa} ${c.name}`);
      });
      // and not the f32 kernels: outside autocast the same layer differs from the bf16 result by more than f32 rounding
      const f32 = withEnv('MOEKIT_MOE_PATH', 'auto', () => {
        manualSeed(7);
        const layer = new MoELayer(moeConfig(c.input));
        return layer.forward(randn([c.T, c.input.hiddenSize!])).dataSync() as Float32Array;
      });
      const got = autocastLayer(c.input, c.T, 'auto').values[0]![1];
      assert.ok(
        got.some((v, i) => Math.abs(v - f32[i]!) > 1e-4 * Math.abs(f32[i]!) + 1e-6),
        'the autocast run computed in bf16',
      );
    });
});
