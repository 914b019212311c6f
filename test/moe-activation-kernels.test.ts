// The GELU and GPT-OSS activation kernels, the GELU-epilogue GEMM and the expert bias pass
// (src/backend/moe.ts), and MoELayer with GELU, GPT-OSS (biased) and CT-MoE experts on the
// 'kernels' / 'layer' paths:
// - the reference twins' backward against central differences of their forward (float64);
// - the native kernels against the twins, call by call (both dtypes, both pre-activation layouts);
// - MoELayer on the reference backend (the twins standing in, f64) and on the native backend
//   (f64 and f32, row blocks on and off) against the reference composition: outputs and the
//   gradients of the input and of every parameter.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { availableBackends, setBackend } from '../src/backend/index.js';
import type { MoeKernels } from '../src/backend/moe.js';
import { referenceMoeKernels as twin } from '../src/backend/reference/moe.js';
import type { FloatDType } from '../src/backend/types.js';
import { type MoEConfigInput, moeConfig } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { ctMoePreset } from '../src/moe/topology/preset.js';
import { fromArray } from '../src/ops/creation.js';
import { Generator } from '../src/tensor/random.js';
import { withEnv } from './helpers/env.js';
import { assertClose } from './helpers/gradcheck.js';

const hasNative = availableBackends().includes('native');
const OSS = { limit: 0.6, alpha: 1.702 }; // a limit inside the test values' range: the clamps cut

function floats(dtype: FloatDType, n: number, gen: Generator, lo = -1, hi = 1): Float32Array | Float64Array {
  const a = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * gen.uniform();
  return a;
}

const tol = (dtype: FloatDType): [number, number] => (dtype === 'f64' ? [1e-12, 1e-10] : [2e-5, 2e-4]);

/** The activation passes of one kind on a pre-activation array gu [rows, ld]: forward, and backward (dgu, hOut, rowDot). */
function passes(
  k: MoeKernels,
  kind: 'gelu' | 'gpt-oss',
  gu: Float64Array | Float32Array,
  ld: number,
  layout: { gateOffset: number; upOffset: number; colStride: number },
  rows: number,
  i: number,
) {
  const forward = (h: Float32Array | Float64Array) =>
    kind === 'gelu'
      ? k.geluForward!({ pre: gu, ld, offset: layout.gateOffset, colStride: layout.colStride, rows, i, h })
      : k.gptOssForward!({ gu, ld, ...layout, rows, i, ...OSS, h });
  const backward = (
    dy: Float32Array | Float64Array,
    rowScale: Float32Array | Float64Array | null,
    dgu: Float32Array | Float64Array,
    hOut: Float32Array | Float64Array | null,
    rowDot: Float32Array | Float64Array | null,
  ) =>
    kind === 'gelu'
      ? k.geluBackward!({
          pre: gu,
          ld,
          offset: layout.gateOffset,
          colStride: layout.colStride,
          rows,
          i,
          dy,
          rowScale,
          dpre: dgu,
          hOut,
          rowDot,
        })
      : k.gptOssBackward!({ gu, ld, ...layout, rows, i, dy, rowScale, dgu, hOut, rowDot, ...OSS });
  return { forward, backward };
}

const LAYOUTS = {
  gelu: [{ gateOffset: 0, upOffset: 0, colStride: 1, ld: 1 }],
  'gpt-oss': [
    { gateOffset: 0, upOffset: 1, colStride: 2, ld: 2 }, // interleaved
    { gateOffset: 0, upOffset: 1, colStride: 1, ld: 2 }, // halves (upOffset scaled by i below)
  ],
};

describe('the GELU and GPT-OSS twins: backward = central differences of forward (f64)', () => {
  for (const kind of ['gelu', 'gpt-oss'] as const) {
    for (const L of LAYOUTS[kind]) {
      test(`${kind}, colStride ${L.colStride}`, () => {
        const [rows, i] = [3, 4];
        const ld = L.ld * i;
        const layout = {
          gateOffset: L.gateOffset,
          upOffset: L.colStride === 1 && kind === 'gpt-oss' ? i : L.upOffset,
          colStride: L.colStride,
        };
        const gen = new Generator(21);
        const gu = floats('f64', rows * ld, gen, -1.5, 1.5) as Float64Array;
        const dy = floats('f64', rows * i, gen) as Float64Array;
        const rowScale = floats('f64', rows, gen) as Float64Array;
        const loss = (g: Float64Array) => {
          const h = new Float64Array(rows * i);
          passes(twin, kind, g, ld, layout, rows, i).forward(h);
          return h.reduce((s, v, q) => s + rowScale[Math.floor(q / i)]! * dy[q]! * v, 0);
        };
        const dgu = new Float64Array(rows * ld);
        const hOut = new Float64Array(rows * i);
        const rowDot = new Float64Array(rows);
        passes(twin, kind, gu, ld, layout, rows, i).backward(dy, rowScale, dgu, hOut, rowDot);
        const eps = 1e-6;
        const used = new Set<number>();
        for (let r = 0; r < rows; r++)
          for (let q = 0; q < i; q++) {
            for (const off of kind === 'gelu' ? [layout.gateOffset] : [layout.gateOffset, layout.upOffset])
              used.add(r * ld + off + q * layout.colStride);
          }
        let clamped = 0;
        for (const at of used) {
          const p = gu.slice();
          const m = gu.slice();
          p[at] += eps;
          m[at] -= eps;
          const fd = (loss(p) - loss(m)) / (2 * eps);
          if (fd === 0) clamped++;
          assertClose([dgu[at]!], [fd], 1e-8, 1e-6, `dgu[${at}]`);
        }
        if (kind === 'gpt-oss') assert.ok(clamped > 0, 'some elements sit beyond the clamps');
        const h = new Float64Array(rows * i);
        passes(twin, kind, gu, ld, layout, rows, i).forward(h);
        assertClose(hOut, h, 0, 0, 'hOut is h');
        for (let r = 0; r < rows; r++) {
          let dot = 0;
          for (let q = 0; q < i; q++) dot += dy[r * i + q]! * h[r * i + q]!;
          assertClose([rowDot[r]!], [dot], 1e-14, 1e-12, `rowDot[${r}]`);
        }
      });
    }
  }
});

describe('the GELU / GPT-OSS / bias kernels are the native ones, call by call [native]', {
  skip: !hasNative && 'native addon not built',
}, () => {
  after(() => setBackend(availableBackends()[0]!));
  const native = (): MoeKernels => setBackend('native').moe!;
  const seg = Int32Array.of(0, 5, 5, 12, 19); // 4 experts, one empty, 19 rows
  const S = 19;
  for (const dtype of ['f64', 'f32'] as FloatDType[]) {
    test(`gemmGelu (pre kept or not, both orientations), the activation passes in place, expertBias (${dtype})`, () => {
      const gen = new Generator(5);
      const [i, k, T] = [37, 6, 11]; // i past one 32-column tile
      const a = floats(dtype, T * k, gen);
      const aIdx = Int32Array.from({ length: S }, (_, r) => (r * 3) % T);
      const w = floats(dtype, 4 * i * k, gen);
      for (const trans of [false, true]) {
        for (const keep of [true, false]) {
          const gemm = (kk: MoeKernels) => {
            const pre = floats(dtype, S * (i + 2), new Generator(4));
            const h = floats(dtype, S * i, new Generator(4));
            kk.gemmGelu!({
              a: { data: a, ld: k },
              aIdx,
              b: { data: w, ld: trans ? k : i, trans, expertStride: i * k },
              seg,
              pre: keep ? { data: pre, ld: i + 2 } : null,
              h,
              i,
              k,
            });
            return [...pre, ...h];
          };
          assertClose(gemm(twin), gemm(native()), ...tol(dtype), `gemmGelu trans ${trans} pre kept ${keep}`);
        }
      }
      for (const kind of ['gelu', 'gpt-oss'] as const) {
        for (const L of LAYOUTS[kind]) {
          const ld = L.ld * i;
          const layout = {
            gateOffset: L.gateOffset,
            upOffset: L.colStride === 1 && kind === 'gpt-oss' ? i : L.upOffset,
            colStride: L.colStride,
          };
          const gu = floats(dtype, S * ld, gen, -3, 3);
          const dy = floats(dtype, S * i, gen);
          const rowScale = floats(dtype, S, gen);
          const run = (kk: MoeKernels) => {
            const h = floats(dtype, S * i, new Generator(5));
            passes(kk, kind, gu, ld, layout, S, i).forward(h);
            const dgu = gu.slice();
            const dyCopy = dy.slice();
            const rowDot = floats(dtype, S, new Generator(5));
            // in place, as the experts node calls them: dgu is the pre-activations, hOut is dy
            passes(kk, kind, dgu, ld, layout, S, i).backward(dyCopy, rowScale, dgu, dyCopy, rowDot);
            return [...h, ...dgu, ...dyCopy, ...rowDot];
          };
          assertClose(run(twin), run(native()), ...tol(dtype), `${kind} passes, colStride ${layout.colStride}`);
        }
      }
      const bias = floats(dtype, 4 * (i + 1), gen);
      const withBias = (kk: MoeKernels) => {
        const c = floats(dtype, S * (2 * i), new Generator(6));
        kk.expertBias!({
          c: { data: c, ld: 2 * i, offset: 1, colStride: 2 },
          bias: { data: bias, offset: 1, expertStride: i + 1 },
          seg,
          n: i - 1,
        });
        return c;
      };
      assertClose(withBias(twin), withBias(native()), 0, 0, 'expertBias');
    });
  }
  test('the activation exports name a bad field and what is allowed', () => {
    const k = native();
    const f = (n: number) => new Float32Array(n);
    assert.throws(() => k.geluForward!({ pre: f(8), ld: 4, offset: 0, colStride: 1, rows: 3, i: 4, h: f(12) }), {
      name: 'RangeError',
      message: /moeActForward: gu has 8 elements, needs 12/,
    });
    assert.throws(
      () =>
        k.gemmGelu!({
          a: { data: f(4), ld: 2 },
          aIdx: null,
          b: { data: f(6), ld: 3, trans: false, expertStride: 6 },
          seg: Int32Array.of(0, 2),
          pre: { data: f(6), ld: 2 },
          h: f(6),
          i: 3,
          k: 2,
        }),
      {
        name: 'RangeError',
        message: /moeGemmGelu: ldpre \(2\) < i \(3\)/,
      },
    );
  });
});

const LAYERS: { name: string; cfg: () => ReturnType<typeof moeConfig>; paths: string[] }[] = [
  {
    name: 'GELU experts (out-in), top-2, capacity drops, LB + z',
    cfg: () =>
      moeConfig({
        hiddenSize: 8,
        router: { numExperts: 5, topK: 2 },
        experts: { kind: 'gelu', intermediateSize: 6 },
        dispatch: { capacityFactor: 0.6, capacityMultiple: 1 },
        losses: { lbWeight: 0.1, zLossWeight: 0.01 },
      } satisfies MoEConfigInput),
    paths: ['kernels', 'layer'],
  },
  {
    name: 'GELU experts with biases (in-out)',
    cfg: () =>
      moeConfig({
        hiddenSize: 6,
        router: { numExperts: 4, topK: 2 },
        experts: { kind: 'gelu', intermediateSize: 5, orientation: 'in-out', bias: true },
      }),
    paths: ['kernels', 'layer'],
  },
  {
    name: 'GPT-OSS experts (interleaved, biases, clamps), router bias',
    cfg: () =>
      moeConfig({
        hiddenSize: 6,
        router: { numExperts: 4, topK: 2, routerBias: true, renormalize: 'sum' },
        experts: { kind: 'gpt-oss', intermediateSize: 5, swigluLimit: OSS.limit },
      }),
    paths: ['kernels'],
  },
  {
    name: 'GPT-OSS experts (fused halves, biases, out-in)',
    cfg: () =>
      moeConfig({
        hiddenSize: 6,
        router: { numExperts: 3, topK: 2 },
        experts: { kind: 'gpt-oss', intermediateSize: 4, layout: 'fused', orientation: 'out-in', swigluLimit: OSS.limit },
      }),
    paths: ['kernels', 'layer'],
  },
  {
    name: 'CT-MoE block (GELU D -> D -> D in-out, topology: routing bias and collaboration), top-3',
    cfg: () => ctMoePreset(8, 5, 3),
    paths: ['kernels'],
  },
];

function runLayer(cfg: ReturnType<typeof moeConfig>, path: string, dtype: FloatDType) {
  return withEnv('MOEKIT_MOE_PATH', path, () => {
    const layer = new MoELayer(cfg, { dtype, generator: new Generator(3) });
    const gen = new Generator(9);
    const H = cfg.hiddenSize;
    const x = fromArray(floats(dtype, 2 * 7 * H, gen, -2, 2), [2, 7, H]).requiresGrad_();
    const y = layer.forward(x);
    y.backward(fromArray(floats(dtype, 2 * 7 * H, gen), [2, 7, H]));
    const params = layer.parameters();
    assert.ok(
      params.every((p) => p.grad),
      'every parameter gets a gradient',
    );
    return { plan: layer.executionPlan, tensors: [y.dataSync(), x.grad!.dataSync(), ...params.map((p) => p.grad!.dataSync())] };
  });
}

function compare(dtype: FloatDType, c: (typeof LAYERS)[number], [atol, rtol]: [number, number]) {
  const ref = runLayer(c.cfg(), 'reference', dtype);
  assert.equal(ref.plan.path, 'reference');
  for (const path of c.paths) {
    const got = runLayer(c.cfg(), path, dtype);
    assert.equal(got.plan.path, path, got.plan.summary);
    got.tensors.forEach((v, i) => assertClose(v, ref.tensors[i]!, atol, rtol, `${path}: tensor ${i}`));
  }
}

describe('MoELayer with GELU / GPT-OSS / CT-MoE experts on the reference backend through its kernel twins', () => {
  after(() => setBackend(availableBackends()[0]!));
  for (const c of LAYERS) {
    test(`${c.name}: ${c.paths.join(' and ')} equal the composition (f64)`, () => {
      setBackend('reference');
      compare('f64', c, [1e-12, 1e-10]);
    });
  }
});

describe('MoELayer with GELU / GPT-OSS / CT-MoE experts on the native kernels [native]', {
  skip: !hasNative && 'native addon not built',
}, () => {
  after(() => setBackend(availableBackends()[0]!));
  test("the CT-MoE block's forward on the kernel chain is the composition's bit for bit (f32, top-3)", () => {
    setBackend('native');
    // D 32, 64 tokens x 3 slots: the composition's grouped GEMMs run on the native grouped-GEMM kernel too
    const forward = (path: string) =>
      withEnv('MOEKIT_MOE_PATH', path, () => {
        const layer = new MoELayer(ctMoePreset(32, 5, 3), { generator: new Generator(3) });
        const x = fromArray(floats('f32', 64 * 32, new Generator(9), -2, 2), [4, 16, 32]);
        return { plan: layer.executionPlan.path, y: layer.forward(x).dataSync() };
      });
    const ref = forward('reference');
    const got = forward('auto');
    assert.equal(got.plan, 'kernels');
    assert.deepEqual(got.y, ref.y);
  });
  for (const c of LAYERS) {
    test(`${c.name}: ${c.paths.join(' and ')} equal the composition (f64, f32; row blocks on and off)`, () => {
      setBackend('native');
      for (const blocks of ['1', '0']) {
        withEnv('MOEKIT_MOE_ROW_BLOCKS', blocks, () => {
          compare('f64', c, [1e-11, 1e-9]);
          compare('f32', c, [2e-5, 2e-4]);
        });
      }
    });
  }
});
