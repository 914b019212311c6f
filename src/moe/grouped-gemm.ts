// Grouped GEMM: rows of expert e (a contiguous segment) times that expert's weight matrix.
// A reference composition of per-segment matmuls recorded as ONE autograd node, so the weight
// gradient is assembled once ([E, ...] stacked) instead of as E full-size sparse sums.
// Where the execution plan says so, the backend's grouped GEMM kernel runs instead (tested against this one).
import { noGrad } from '../tensor/autograd.js';
import { Tensor, makeOutput } from '../tensor/tensor.js';
import { shapeToString } from '../tensor/shape.js';
import { autocastLow } from '../ops/autocast-cast.js';
import { matmul } from '../ops/linalg.js';
import { concat, narrow, reshape } from '../ops/shape.js';
import { groupedGemmKernels } from './execution/plan.js';

export interface GroupedMatmulOptions {
  /** w[e] is [out, in] (PyTorch Linear / HF layout) when true, [in, out] when false. */
  transB: boolean;
}

/** x [S, in] with segment offsets (E+1) and w [E, ·, ·] -> [S, out]: rows of e times w[e]. */
export function groupedMatmul(xIn: Tensor, wIn: Tensor, segOffsets: Int32Array, opts: GroupedMatmulOptions): Tensor {
  const [x, w] = [autocastLow(xIn), autocastLow(wIn)]; // the expert GEMMs are on autocast's low-precision list
  const E = w.shape[0]!;
  const [inW, outW] = opts.transB ? [w.shape[2]!, w.shape[1]!] : [w.shape[1]!, w.shape[2]!];
  if (x.ndim !== 2 || w.ndim !== 3 || x.shape[1] !== inW || segOffsets.length !== E + 1 || segOffsets[E] !== x.shape[0]) {
    throw new RangeError(
      `groupedMatmul: x ${shapeToString(x.shape)}, w ${shapeToString(w.shape)} (transB ${opts.transB}) and ${segOffsets.length} offsets ending at ${segOffsets[segOffsets.length - 1]} do not fit`,
    );
  }
  if (x.dtype !== w.dtype) throw new TypeError(`groupedMatmul: x (${x.dtype}) and w (${w.dtype}) must share a dtype`);
  const S = x.shape[0]!;
  const b = x.backend;
  const k = groupedGemmKernels(x, w, S * inW * outW);
  if (k) {
    // all experts' tiles in one kernel call; dW written directly per expert
    const ldb = w.shape[2]!;
    const wb = { data: w.storage, ld: ldb, expertStride: w.shape[1]! * ldb };
    const out = b.full(x.dtype, S * outW, 0);
    k.gemmRows({
      a: { data: x.storage, ld: inW },
      aIdx: null,
      scale: null,
      b: { ...wb, trans: opts.transB },
      seg: segOffsets,
      c: { data: out, ld: outW },
      n: outW,
      k: inW,
      accumulate: false,
    });
    return makeOutput(b, out, [S, outW], {
      name: 'groupedMatmul',
      inputs: [x, w],
      backward: (g) => {
        let dx: Tensor | null = null;
        if (x.requiresGrad) {
          const d = b.full(x.dtype, S * inW, 0);
          k.gemmRows({
            a: { data: g.storage, ld: outW },
            aIdx: null,
            scale: null,
            b: { ...wb, trans: !opts.transB },
            seg: segOffsets,
            c: { data: d, ld: inW },
            n: inW,
            k: outW,
            accumulate: false,
          });
          dx = new Tensor(d, [S, inW], b);
        }
        let dw: Tensor | null = null;
        if (w.requiresGrad) {
          const d = b.full(x.dtype, E * wb.expertStride, 0);
          const gm = { data: g.storage, ld: outW };
          const xm = { data: x.storage, ld: inW };
          if (opts.transB)
            k.gemmWgrad({ a: gm, aIdx: null, scale: null, b: xm, bIdx: null, seg: segOffsets, c: d, m: outW, n: inW, accumulate: false });
          else
            k.gemmWgrad({ a: xm, aIdx: null, scale: null, b: gm, bIdx: null, seg: segOffsets, c: d, m: inW, n: outW, accumulate: false });
          dw = new Tensor(d, w.shape, b);
        }
        return [dx, dw];
      },
    });
  }
  const expertW = (e: number) => reshape(narrow(w, 0, e, 1), w.shape.slice(1));
  const has = (e: number) => segOffsets[e + 1]! > segOffsets[e]!;
  const segments = (): number[] => [...Array(E).keys()].filter(has);
  const rowsOf = (t: Tensor, e: number) => narrow(t, 0, segOffsets[e]!, segOffsets[e + 1]! - segOffsets[e]!);
  const zeros = (shape: number[]) =>
    new Tensor(
      b.full(
        x.dtype,
        shape.reduce((p, d) => p * d, 1),
        0,
      ),
      shape,
      b,
    );
  const join = (parts: Tensor[], shape: number[]) =>
    parts.length === 0 ? zeros(shape) : parts.length === 1 ? parts[0]! : concat(parts, 0);

  const out = noGrad(() =>
    join(
      segments().map((e) => matmul(rowsOf(x, e), expertW(e), { transB: opts.transB })),
      [S, outW],
    ),
  );
  return makeOutput(b, out.storage, [S, outW], {
    name: 'groupedMatmul',
    inputs: [x, w],
    backward: (g) => {
      const segs = segments();
      // dX_e = g_e · op(W_e)ᵀ ;  dW_e = (x_eᵀ g_e) or its transpose for [out, in] weights
      const dx = x.requiresGrad
        ? join(
            segs.map((e) => matmul(rowsOf(g, e), expertW(e), { transB: !opts.transB })),
            [S, inW],
          )
        : null;
      let dw: Tensor | null = null;
      if (w.requiresGrad) {
        const per = [...Array(E).keys()].map((e) => {
          if (!has(e)) return zeros([1, ...w.shape.slice(1)]);
          const ge = rowsOf(g, e);
          const xe = rowsOf(x, e);
          const d = opts.transB ? matmul(ge, xe, { transA: true }) : matmul(xe, ge, { transA: true });
          return reshape(d, [1, ...w.shape.slice(1)]);
        });
        dw = concat(per, 0);
      }
      return [dx, dw];
    },
  });
}
