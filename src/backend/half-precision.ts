// bf16 / f16 storages on a backend whose kernels compute in f32 and f64.
//
// `withHalfPrecision(inner)` returns a backend that takes BF16Array / F16Array storages
// everywhere: a kernel widens its half operands to f32 (exactly), runs the f32 kernel
// (so reductions, GEMMs, softmax and norms accumulate in f32 or wider) and rounds each
// output once to the operands' half dtype, round to nearest even as PyTorch casts
// (src/io/half.ts). Statistics a backward needs (norms' mean / rstd, attention's lse)
// stay f32, as PyTorch keeps them. Kernels that only move elements (permute, slices,
// index select / gather) run on the 16-bit patterns themselves. Storages that are not half
// go straight to the inner backend, so the f32 / f64 paths are unchanged.
//
// A backend may give `halfMatmul` (a GEMM reading bf16 / f16 operands directly, f32
// accumulation, one rounding); the native backend gives its bf16 GEMM (native/gemm/gemm_bf16.c).
import { narrowToHalf, widenHalfToF32 } from '../io/half.js';
import type { Backend } from './backend.js';
import { gather, indexSelect } from './reference/indexing.js';
import { permute, sliceCopy } from './reference/layout.js';
import {
  type DType,
  type HalfArray,
  type HalfDType,
  type Storage,
  type TypedArray,
  dtypeOfArray,
  isHalfArray,
  isHalfDType,
  typedArrayFor,
} from './types.js';

/** Native helpers a backend may give the half-precision layer (the native backend does). */
export interface HalfAccel {
  matmul?: HalfMatmul;
  /** Bulk conversions with the semantics of src/io/half.ts's engine casts. */
  convert?: {
    widen(src: HalfArray, out: Float32Array, dtype: HalfDType): void;
    narrow(src: Float32Array, out: Uint16Array, dtype: HalfDType): void;
    /** bf16 of src's rows (src.length / rowScale.length elements each) times their scale, the product in f32. */
    narrowScaledRows?(src: Float32Array, rowScale: Float32Array, out: Uint16Array): void;
  };
}

/** A GEMM over half operands of one dtype, accumulating in f32; returns [batch, m, n] rounded once to that dtype, or null (not covered). */
export type HalfMatmul = (
  a: HalfArray,
  b: HalfArray,
  batch: number,
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
  aBatchStride: number,
  bBatchStride: number,
) => HalfArray | null;

const halfDtype = (s: HalfArray): HalfDType => dtypeOfArray(s) as HalfDType;

/** f32 values of a half storage; other storages as they are. */
export function widen(s: Storage): Storage {
  return isHalfArray(s) ? widenHalfToF32(s, halfDtype(s)) : s;
}

function widenOrNull(s: Storage | null): Storage | null {
  return s === null ? null : widen(s);
}

/** `s` (f32 / f64 / i32 values) rounded to `dtype` when that is a half dtype, else unchanged. */
export function narrowTo(s: Storage, dtype: DType): Storage {
  if (!isHalfDType(dtype)) return s;
  return narrowToHalf(s as Float32Array | Float64Array | Int32Array, dtype, typedArrayFor(dtype, s.length) as Uint16Array) as HalfArray;
}

/** Write f32 values back into a half storage in place (kernels that mutate their target). */
function narrowInto(target: HalfArray, values: Storage): void {
  narrowToHalf(values as Float32Array, halfDtype(target), target);
}

const anyHalf = (...ss: (Storage | null)[]): boolean => ss.some((s) => s !== null && isHalfArray(s));

/** The f32 compute dtype of a half dtype (others unchanged). */
const computeDtype = (d: DType): DType => (isHalfDType(d) ? 'f32' : d);

export function withHalfPrecision(inner: Backend, accel: HalfAccel = {}): Backend {
  const dt = (s: Storage): DType => inner.dtypeOf(s);
  const { matmul: halfMatmul, convert } = accel;
  const toF32 = (s: Storage): Storage => {
    if (!isHalfArray(s)) return s;
    if (!convert) return widen(s);
    const out = new Float32Array(s.length);
    convert.widen(s, out, halfDtype(s));
    return out;
  };
  const toHalf = (s: Storage, dtype: DType): Storage => {
    if (!isHalfDType(dtype) || !convert || !(s instanceof Float32Array)) return narrowTo(s, dtype);
    const out = typedArrayFor(dtype, s.length) as HalfArray;
    convert.narrow(s, out, dtype);
    return out;
  };
  const intoHalf = (target: HalfArray, values: Storage): void => {
    if (convert && values instanceof Float32Array) convert.narrow(values, target, halfDtype(target));
    else narrowInto(target, values);
  };
  /** An f32 copy of a half storage; other storages themselves (mutated in place). */
  /** An f32 copy of a half storage; other storages themselves (mutated in place). */
  const widenCopy = (s: Storage): Storage => {
    return isHalfArray(s) ? toF32(s) : s;
  };

  const writeBack = (target: Storage, values: Storage): void => {
    if (isHalfArray(target)) intoHalf(target, values);
  };

  /** Run an in-place kernel on the f32 values of `target`, then round them back into it. */
  const mutateWide = (target: TypedArray, run: (wide: Storage) => void): void => {
    if (!isHalfArray(target)) {
      run(target);
      return;
    }
    const wide = toF32(target);
    run(wide);
    intoHalf(target, wide);
  };
  const move = (x: Storage, run: (s: Storage) => Storage, onBits: (h: HalfArray) => Storage): Storage => {
    if (!isHalfArray(x)) return run(x);
    return convert ? toHalf(run(toF32(x)), dt(x)) : onBits(x);
  };
  const hb: Backend = {
    ...inner,
    full(dtype, n, value) {
      if (!isHalfDType(dtype)) return inner.full(dtype, n, value);
      const out = typedArrayFor(dtype, n) as HalfArray;
      const bits = narrowToHalf(Float32Array.of(value), dtype)[0]!;
      if (bits !== 0) out.fill(bits);
      return out;
    },
    readSync: (s) => (isHalfArray(s) ? toF32(s) : inner.readSync(s)),
    read: async (s) => (isHalfArray(s) ? toF32(s) : inner.read(s)),
    cast(s, dtype) {
      if (!isHalfArray(s) && !isHalfDType(dtype)) return inner.cast(s, dtype);
      if (dt(s) === dtype) return s.slice();
      const wide = toF32(s);
      if (isHalfDType(dtype)) return toHalf(wide, dtype);
      return dtype === 'f32' ? wide : inner.cast(wide, dtype);
    },
    unary(op, x) {
      return isHalfArray(x) ? toHalf(inner.unary(op, toF32(x)), dt(x)) : inner.unary(op, x);
    },
    unaryBackward(op, x, dy) {
      if (!anyHalf(x, dy)) return inner.unaryBackward(op, x, dy);
      return toHalf(inner.unaryBackward(op, toF32(x), toF32(dy)), dt(x));
    },
    binary(op, a, aStrides, b, bStrides, outShape, outDtype) {
      if (!anyHalf(a, b) && !isHalfDType(outDtype)) return inner.binary(op, a, aStrides, b, bStrides, outShape, outDtype);
      return toHalf(inner.binary(op, toF32(a), aStrides, toF32(b), bStrides, outShape, computeDtype(outDtype)), outDtype);
    },
    where(cond, condStrides, a, aStrides, b, bStrides, outShape) {
      if (!anyHalf(cond, a, b)) return inner.where(cond, condStrides, a, aStrides, b, bStrides, outShape);
      return toHalf(inner.where(toF32(cond), condStrides, toF32(a), aStrides, toF32(b), bStrides, outShape), dt(a));
    },
    clamp(x, lo, hi) {
      return isHalfArray(x) ? toHalf(inner.clamp(toF32(x), lo, hi), dt(x)) : inner.clamp(x, lo, hi);
    },
    reduce(op, x, outer, n, inner_) {
      return isHalfArray(x) ? toHalf(inner.reduce(op, toF32(x), outer, n, inner_), dt(x)) : inner.reduce(op, x, outer, n, inner_);
    },
    argReduce: (op, x, outer, n, in_) => inner.argReduce(op, toF32(x), outer, n, in_),
    cumsum(x, outer, n, in_, reverse) {
      return isHalfArray(x) ? toHalf(inner.cumsum(toF32(x), outer, n, in_, reverse), dt(x)) : inner.cumsum(x, outer, n, in_, reverse);
    },
    matmul(a, b, batch, m, k, n, transA, transB, aStride, bStride) {
      if (!anyHalf(a, b)) return inner.matmul(a, b, batch, m, k, n, transA, transB, aStride, bStride);
      if (halfMatmul && isHalfArray(a) && isHalfArray(b) && dt(a) === dt(b)) {
        const out = halfMatmul(a, b, batch, m, k, n, transA, transB, aStride, bStride);
        if (out) return out;
      }
      return toHalf(inner.matmul(toF32(a), toF32(b), batch, m, k, n, transA, transB, aStride, bStride), dt(a));
    },
    softmax(x, rows, n, log) {
      return isHalfArray(x) ? toHalf(inner.softmax(toF32(x), rows, n, log), dt(x)) : inner.softmax(x, rows, n, log);
    },
    softmaxBackward(y, dy, rows, n, log) {
      if (!anyHalf(y, dy)) return inner.softmaxBackward(y, dy, rows, n, log);
      return toHalf(inner.softmaxBackward(toF32(y), toF32(dy), rows, n, log), dt(y));
    },
    layerNorm(x, weight, bias, rows, n, eps) {
      if (!anyHalf(x, weight, bias)) return inner.layerNorm(x, weight, bias, rows, n, eps);
      const r = inner.layerNorm(toF32(x), widenOrNull(weight), widenOrNull(bias), rows, n, eps);
      return { ...r, y: toHalf(r.y, dt(x)) };
    },
    layerNormBackward(dy, x, weight, mean, rstd, rows, n, withBias) {
      if (!anyHalf(dy, x, weight)) return inner.layerNormBackward(dy, x, weight, mean, rstd, rows, n, withBias);
      const d = inner.layerNormBackward(toF32(dy), toF32(x), widenOrNull(weight), toF32(mean), toF32(rstd), rows, n, withBias);
      const wd = weight ? dt(weight) : dt(x);
      return { dx: toHalf(d.dx, dt(x)), dw: d.dw && toHalf(d.dw, wd), db: d.db && toHalf(d.db, wd) };
    },
    rmsNorm(x, weight, rows, n, eps) {
      if (!anyHalf(x, weight)) return inner.rmsNorm(x, weight, rows, n, eps);
      const r = inner.rmsNorm(toF32(x), widenOrNull(weight), rows, n, eps);
      return { ...r, y: toHalf(r.y, dt(x)) };
    },
    rmsNormBackward(dy, x, weight, rstd, rows, n) {
      if (!anyHalf(dy, x, weight)) return inner.rmsNormBackward(dy, x, weight, rstd, rows, n);
      const d = inner.rmsNormBackward(toF32(dy), toF32(x), widenOrNull(weight), toF32(rstd), rows, n);
      return { dx: toHalf(d.dx, dt(x)), dw: d.dw && toHalf(d.dw, weight ? dt(weight) : dt(x)), db: null };
    },
    // element moves: with native conversions, the inner kernel on the f32 values (exact; a NaN
    // comes back as PyTorch's NaN); without, the reference kernels on the 16-bit patterns
    permute: (x, shape, perm) =>
      move(
        x,
        (s) => inner.permute(s, shape, perm),
        (h) => permute(h, shape, perm),
      ),
    sliceCopy: (x, shape, starts, sizes) =>
      move(
        x,
        (s) => inner.sliceCopy(s, shape, starts, sizes),
        (h) => sliceCopy(h, shape, starts, sizes),
      ),
    indexSelect: (x, outer, n, in_, idx) =>
      move(
        x,
        (s) => inner.indexSelect(s, outer, n, in_, idx),
        (h) => indexSelect(h, outer, n, in_, idx),
      ),
    gather: (x, outer, n, in_, idx, m) =>
      move(
        x,
        (s) => inner.gather(s, outer, n, in_, idx, m),
        (h) => gather(h, outer, n, in_, idx, m),
      ),
    sliceAddInPlace(target, shape, starts, src, srcShape) {
      if (!anyHalf(target, src)) return inner.sliceAddInPlace(target, shape, starts, src, srcShape);
      mutateWide(target, (t) => inner.sliceAddInPlace(t, shape, starts, toF32(src), srcShape));
    },
    indexAddInPlace(target, outer, n, in_, idx, src) {
      if (!anyHalf(target, src)) return inner.indexAddInPlace(target, outer, n, in_, idx, src);
      mutateWide(target, (t) => inner.indexAddInPlace(t, outer, n, in_, idx, toF32(src)));
    },
    scatterAddInPlace(target, outer, n, in_, idx, src, m) {
      if (!anyHalf(target, src)) return inner.scatterAddInPlace(target, outer, n, in_, idx, src, m);
      mutateWide(target, (t) => inner.scatterAddInPlace(t, outer, n, in_, idx, toF32(src), m));
    },
    topk(x, rows, n, k, largest) {
      if (!isHalfArray(x)) return inner.topk(x, rows, n, k, largest);
      const r = inner.topk(toF32(x), rows, n, k, largest);
      return { values: toHalf(r.values, dt(x)), indices: r.indices };
    },
    argsort: (x, rows, n, descending) => inner.argsort(toF32(x), rows, n, descending),
    attention(q, k, v, bh, tq, tk, d, scale, causal) {
      if (!anyHalf(q, k, v)) return inner.attention(q, k, v, bh, tq, tk, d, scale, causal);
      const r = inner.attention(toF32(q), toF32(k), toF32(v), bh, tq, tk, d, scale, causal);
      return { out: toHalf(r.out, dt(q)), lse: r.lse };
    },
    attentionBackward(q, k, v, out, lse, dout, bh, tq, tk, d, scale, causal) {
      if (!anyHalf(q, k, v, out, dout)) return inner.attentionBackward(q, k, v, out, lse, dout, bh, tq, tk, d, scale, causal);
      const w = (s: Storage) => toF32(s);
      const g = inner.attentionBackward(w(q), w(k), w(v), w(out), w(lse), w(dout), bh, tq, tk, d, scale, causal);
      return { dq: toHalf(g.dq, dt(q)), dk: toHalf(g.dk, dt(k)), dv: toHalf(g.dv, dt(v)) };
    },
    adamwInPlace(param, grad, m, v, h) {
      if (!anyHalf(param, grad, m, v)) return inner.adamwInPlace(param, grad, m, v, h);
      // each half operand is updated through an f32 copy, rounded once when written back
      const [p32, m32, v32] = [param, m, v].map((s) => widenCopy(s));
      inner.adamwInPlace(p32!, toF32(grad), m32!, v32!, h);
      [param, m, v].forEach((s, i) => writeBack(s, [p32, m32, v32][i]!));
    },
    axpyInPlace(y, x, alpha) {
      if (!anyHalf(y, x)) return inner.axpyInPlace(y, x, alpha);
      mutateWide(y, (t) => inner.axpyInPlace(t, toF32(x), alpha));
    },
  };
  return hb;
}
