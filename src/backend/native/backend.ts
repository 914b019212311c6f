// The native backend: kernels from the C addon where it has them, the reference kernels
// for the rest (each native kernel is held to its reference twin by
// test/backend-native-agreement.test.ts and the op test suite).
//
// Each wrapper allocates the output, then calls the addon, which writes into it. Inputs
// the addon does not take (int32 where only floats are ported, mixed array kinds, more
// than 16 dims, negative strides) go to the reference kernel, so semantics never depend
// on which path ran.
import type { Backend } from '../backend.js';
import { type HalfAccel, type HalfMatmul, withHalfPrecision } from '../half-precision.js';
import { referenceBackend as ref } from '../reference/index.js';
import {
  BF16Array,
  arrayLike,
  type HalfArray,
  type Storage,
  dtypeOfArray,
  isHalfArray,
  floatArrayLike,
  isFloatArray,
  typedArrayFor,
  uninitializedFloatArrayLike,
} from '../types.js';
import { loadNativeAddon, type NativeAddon } from './addon.js';
import { nativeMoeKernels } from './moe.js';
import { moeAddonKernels, routerAddonKernels } from './moe-addon.js';

type FloatArray = Float32Array | Float64Array;

const MAX_RANK = 16;

/** All arrays are of x's kind (nulls are skipped). */
function sameKind(x: Storage, ...rest: (Storage | null)[]): boolean {
  return rest.every((s) => s === null || s.constructor === x.constructor);
}

/** All float, all of one kind. */
function floats(x: Storage, ...rest: (Storage | null)[]): x is FloatArray {
  return isFloatArray(x) && sameKind(x, ...rest);
}

function like(x: Storage, n: number): Storage {
  return arrayLike(x, n); // through the storage pool (storage-pool.ts)
}

function dimsOk(...arrays: (readonly number[])[]): boolean {
  return arrays.every((a) => a.length <= MAX_RANK && a.every((v) => Number.isInteger(v) && v >= 0));
}

/** A storage as the addon takes it: bf16 / f16 never get here (withHalfPrecision widens them first). */
function st(s: Storage): Exclude<Storage, HalfArray> {
  if (isHalfArray(s)) throw new TypeError('native backend: a bf16 / f16 storage reached an f32 kernel');
  return s;
}

const prod = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

function nativeKernels(addon: NativeAddon): Partial<Backend> {
  const k: Partial<Backend> = {
    matmul(a, b, batch, m, kk, n, transA, transB, aBatchStride, bBatchStride) {
      if (!floats(a, b)) return ref.matmul(a, b, batch, m, kk, n, transA, transB, aBatchStride, bBatchStride);
      const out = uninitializedFloatArrayLike(a, batch * m * n); // the GEMM writes every element
      addon.matmul(a, b as FloatArray, out, batch, m, kk, n, transA, transB, aBatchStride, bBatchStride, false);
      return out;
    },
  };
  if (typeof addon.unary !== 'function') return k; // an addon built before the kernels landed

  // ---- elementwise ----
  Object.assign(k, {
    unary(op, x) {
      if (!isFloatArray(x)) return ref.unary(op, x);
      const out = floatArrayLike(x, x.length);
      addon.unary(op, x, out);
      return out;
    },
    unaryBackward(op, x, dy) {
      if (!floats(x, dy) || dy.length < x.length) return ref.unaryBackward(op, x, dy);
      const out = floatArrayLike(x, x.length);
      addon.unaryBackward(op, x, dy as FloatArray, out);
      return out;
    },
    binary(op, a, aStrides, b, bStrides, outShape, outDtype) {
      const intSlow = a instanceof Int32Array && (op === 'mul' || op === 'div' || op === 'pow');
      if (intSlow || !sameKind(a, b) || dtypeOfArray(a) !== outDtype || !dimsOk(aStrides, bStrides, outShape)) {
        return ref.binary(op, a, aStrides, b, bStrides, outShape, outDtype);
      }
      // the kernel writes every element: a float output skips the zero fill
      const n = prod(outShape);
      const out = isFloatArray(a) ? uninitializedFloatArrayLike(a, n) : typedArrayFor(outDtype, n);
      addon.binary(op, st(a), aStrides, st(b), bStrides, outShape, st(out));
      return out;
    },
    where(cond, condStrides, a, aStrides, b, bStrides, outShape) {
      if (!sameKind(a, b) || !dimsOk(condStrides, aStrides, bStrides, outShape)) {
        return ref.where(cond, condStrides, a, aStrides, b, bStrides, outShape);
      }
      const out = like(a, prod(outShape));
      addon.where(st(cond), condStrides, st(a), aStrides, st(b), bStrides, outShape, st(out));
      return out;
    },
    clamp(x, lo, hi) {
      if (!isFloatArray(x)) return ref.clamp(x, lo, hi);
      const out = floatArrayLike(x, x.length);
      addon.clamp(x, lo, hi, out);
      return out;
    },
    cast(s, dtype) {
      const out = typedArrayFor(dtype, s.length);
      addon.cast(st(s), st(out));
      return out;
    },
  } satisfies Partial<Backend>);

  // ---- reductions ----
  Object.assign(k, {
    reduce(op, x, outer, n, inner) {
      if (!isFloatArray(x)) return ref.reduce(op, x, outer, n, inner);
      const out = floatArrayLike(x, outer * inner);
      addon.reduce(op, x, outer, n, inner, out);
      return out;
    },
    argReduce(op, x, outer, n, inner) {
      if (!isFloatArray(x)) return ref.argReduce(op, x, outer, n, inner);
      const out = new Int32Array(outer * inner);
      addon.argReduce(op, x, outer, n, inner, out);
      return out;
    },
    cumsum(x, outer, n, inner, reverse) {
      if (!isFloatArray(x)) return ref.cumsum(x, outer, n, inner, reverse);
      const out = floatArrayLike(x, x.length);
      addon.cumsum(x, outer, n, inner, reverse, out);
      return out;
    },
  } satisfies Partial<Backend>);

  // ---- row-wise ----
  Object.assign(k, {
    softmax(x, rows, n, log) {
      if (!isFloatArray(x)) return ref.softmax(x, rows, n, log);
      const out = floatArrayLike(x, rows * n);
      addon.softmax(x, rows, n, log, out);
      return out;
    },
    softmaxBackward(y, dy, rows, n, log) {
      if (!floats(y, dy)) return ref.softmaxBackward(y, dy, rows, n, log);
      const dx = floatArrayLike(y, rows * n);
      addon.softmaxBackward(y, dy as FloatArray, rows, n, log, dx);
      return dx;
    },
    logSoftmaxPick(x, targets, rows, n) {
      if (!isFloatArray(x) || !(targets instanceof Int32Array)) throw new TypeError('logSoftmaxPick: expects float logits and i32 targets');
      const picked = floatArrayLike(x, rows);
      const lse = floatArrayLike(x, rows);
      addon.logSoftmaxPick(x, targets, rows, n, picked, lse);
      return { picked, lse };
    },
    logSoftmaxPickBackward(x, lse, targets, g, rows, n) {
      if (!floats(x, lse, g) || !(targets instanceof Int32Array))
        throw new TypeError('logSoftmaxPickBackward: expected the storages of logSoftmaxPick');
      const dx = uninitializedFloatArrayLike(x, rows * n);
      addon.logSoftmaxPickBackward(x, lse as FloatArray, targets, g as FloatArray, rows, n, dx);
      return dx;
    },
    layerNorm(x, weight, bias, rows, n, eps) {
      if (!floats(x, weight, bias)) return ref.layerNorm(x, weight, bias, rows, n, eps);
      const y = floatArrayLike(x, rows * n);
      const mean = floatArrayLike(x, rows);
      const rstd = floatArrayLike(x, rows);
      addon.layerNorm(x, weight as FloatArray | null, bias as FloatArray | null, rows, n, eps, y, mean, rstd);
      return { y, mean, rstd };
    },
    layerNormBackward(dy, x, weight, mean, rstd, rows, n, withBias) {
      if (!floats(x, dy, weight, mean, rstd)) {
        return ref.layerNormBackward(dy, x, weight, mean, rstd, rows, n, withBias);
      }
      const dx = floatArrayLike(x, rows * n);
      const dw = weight ? floatArrayLike(x, n) : null;
      const db = withBias ? floatArrayLike(x, n) : null;
      addon.layerNormBackward(
        dy as FloatArray,
        x,
        weight as FloatArray | null,
        mean as FloatArray,
        rstd as FloatArray,
        rows,
        n,
        dx,
        dw,
        db,
      );
      return { dx, dw, db };
    },
    rmsNorm(x, weight, rows, n, eps) {
      if (!floats(x, weight)) return ref.rmsNorm(x, weight, rows, n, eps);
      const y = floatArrayLike(x, rows * n);
      const rstd = floatArrayLike(x, rows);
      addon.rmsNorm(x, weight as FloatArray | null, rows, n, eps, y, rstd);
      return { y, mean: floatArrayLike(x, 0), rstd };
    },
    rmsNormBackward(dy, x, weight, rstd, rows, n) {
      if (!floats(x, dy, weight, rstd)) return ref.rmsNormBackward(dy, x, weight, rstd, rows, n);
      const dx = floatArrayLike(x, rows * n);
      const dw = weight ? floatArrayLike(x, n) : null;
      addon.rmsNormBackward(dy as FloatArray, x, weight as FloatArray | null, rstd as FloatArray, rows, n, dx, dw);
      return { dx, dw, db: null };
    },
  } satisfies Partial<Backend>);

  // ---- layout ----
  Object.assign(k, {
    permute(x, shape, perm) {
      if (!dimsOk(shape, perm)) return ref.permute(x, shape, perm);
      const out = like(x, x.length);
      addon.permute(st(x), shape, perm, st(out));
      return out;
    },
    sliceCopy(x, shape, starts, sizes) {
      if (!dimsOk(shape, starts, sizes)) return ref.sliceCopy(x, shape, starts, sizes);
      const out = like(x, prod(sizes));
      addon.sliceCopy(st(x), shape, starts, sizes, st(out));
      return out;
    },
    sliceAddInPlace(target, shape, starts, src, srcShape) {
      if (!sameKind(target, src) || !dimsOk(shape, starts, srcShape)) {
        ref.sliceAddInPlace(target, shape, starts, src, srcShape);
        return;
      }
      addon.sliceAddInPlace(st(target), shape, starts, st(src), srcShape);
    },
  } satisfies Partial<Backend>);

  // ---- indexing ----
  Object.assign(k, {
    indexSelect(x, outer, n, inner, idx) {
      if (!(idx instanceof Int32Array)) return ref.indexSelect(x, outer, n, inner, idx);
      const out = like(x, outer * idx.length * inner);
      addon.indexSelect(st(x), outer, n, inner, idx, st(out));
      return out;
    },
    indexAddInPlace(target, outer, n, inner, idx, src) {
      if (!(idx instanceof Int32Array) || !sameKind(target, src)) {
        ref.indexAddInPlace(target, outer, n, inner, idx, src);
        return;
      }
      addon.indexAddInPlace(st(target), outer, n, inner, idx, st(src));
    },
    gather(x, outer, n, inner, idx, m) {
      if (!(idx instanceof Int32Array)) return ref.gather(x, outer, n, inner, idx, m);
      const out = like(x, outer * m * inner);
      addon.gather(st(x), outer, n, inner, idx, m, st(out));
      return out;
    },
    scatterAddInPlace(target, outer, n, inner, idx, src, m) {
      if (!(idx instanceof Int32Array) || !sameKind(target, src)) {
        ref.scatterAddInPlace(target, outer, n, inner, idx, src, m);
        return;
      }
      addon.scatterAddInPlace(st(target), outer, n, inner, idx, st(src), m);
    },
  } satisfies Partial<Backend>);

  // ---- selection / sorting ----
  Object.assign(k, {
    topk(x, rows, n, kk, largest) {
      if (kk > n) return ref.topk(x, rows, n, kk, largest);
      const values = like(x, rows * kk);
      const indices = new Int32Array(rows * kk);
      addon.topk(st(x), rows, n, kk, largest, st(values), indices);
      return { values, indices };
    },
    argsort(x, rows, n, descending) {
      const out = new Int32Array(rows * n);
      addon.argsort(st(x), rows, n, descending, out);
      return out;
    },
  } satisfies Partial<Backend>);

  // ---- attention ----
  Object.assign(k, {
    attention(q, kk, v, bh, tq, tk, d, scale, causal) {
      if (!floats(q, kk, v)) return ref.attention(q, kk, v, bh, tq, tk, d, scale, causal);
      const out = floatArrayLike(q, bh * tq * d);
      const lse = floatArrayLike(q, bh * tq);
      addon.attention(q, kk as FloatArray, v as FloatArray, bh, tq, tk, d, scale, causal, out, lse);
      return { out, lse };
    },
    attentionBackward(q, kk, v, out, lse, dout, bh, tq, tk, d, scale, causal) {
      if (!floats(q, kk, v, out, lse, dout)) {
        return ref.attentionBackward(q, kk, v, out, lse, dout, bh, tq, tk, d, scale, causal);
      }
      const dq = floatArrayLike(q, q.length);
      const dk = floatArrayLike(q, kk.length);
      const dv = floatArrayLike(q, v.length);
      const f = (s: Storage) => s as FloatArray;
      addon.attentionBackward(q, f(kk), f(v), f(out), f(lse), f(dout), bh, tq, tk, d, scale, causal, dq, dk, dv);
      return { dq, dk, dv };
    },
  } satisfies Partial<Backend>);

  // ---- optimiser ----
  Object.assign(k, {
    adamwInPlace(param, grad, m, v, h) {
      if (!floats(param, grad, m, v) || grad.length < param.length || m.length < param.length || v.length < param.length) {
        ref.adamwInPlace(param, grad, m, v, h);
        return;
      }
      const f = (s: Storage) => s as FloatArray;
      addon.adamw(param, f(grad), f(m), f(v), h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, h.biasCorrection1, h.biasCorrection2);
    },
    axpyInPlace(y, x, alpha) {
      if (!floats(y, x) || x.length < y.length) {
        ref.axpyInPlace(y, x, alpha);
        return;
      }
      addon.axpy(y, x as FloatArray, alpha);
    },
    sumSquares: (x, sq) => addon.sumSquares(x, sq),
    dropoutMask: (mask, state, threshold, keep) => addon.dropoutMask(mask, state, threshold, keep),
  } satisfies Partial<Backend>);
  return k;
}

/** The addon's bf16 GEMM as the half-precision layer takes it (bf16 operands only; f16 widens in JS). */
function bf16Matmul(addon: NativeAddon): HalfMatmul | undefined {
  const run = addon.matmulBf16;
  if (typeof run !== 'function') return undefined;
  return (a, b, batch, m, k, n, transA, transB, aStride, bStride) => {
    if (!(a instanceof BF16Array) || !(b instanceof BF16Array)) return null;
    const out = new BF16Array(batch * m * n); // the kernel writes every element
    run.call(addon, a, b, out, batch, m, k, n, transA, transB, aStride, bStride);
    return out;
  };
}

/** The addon's bulk bf16 / f16 conversions (native/ops/half_convert.c), where it has them. */
function halfConvert(addon: NativeAddon): HalfAccel['convert'] {
  const { halfToF32, f32ToHalf, f32ToBf16ScaledRows } = addon;
  if (typeof halfToF32 !== 'function' || typeof f32ToHalf !== 'function') return undefined;
  return {
    widen: (src, out, dtype) => halfToF32.call(addon, src, out, dtype === 'f16'),
    narrow: (src, out, dtype) => f32ToHalf.call(addon, src, out, dtype === 'f16'),
    narrowScaledRows: typeof f32ToBf16ScaledRows === 'function' ? (src, s, out) => f32ToBf16ScaledRows.call(addon, src, s, out) : undefined,
  };
}

/** The native backend over a loaded addon (tests use this to compare kernels). */
export function nativeBackendFrom(addon: NativeAddon): Backend {
  const moeAddon = moeAddonKernels();
  const routerAddon = routerAddonKernels();
  const moe = moeAddon && routerAddon ? nativeMoeKernels(moeAddon, routerAddon, halfConvert(addon)) : undefined;
  return withHalfPrecision(
    { ...ref, ...nativeKernels(addon), name: 'native', moe },
    { matmul: bf16Matmul(addon), convert: halfConvert(addon) },
  );
}

export function createNativeBackend(): { backend: Backend; description: string; addon: NativeAddon } | { backend: null; reason: string } {
  const loaded = loadNativeAddon();
  if (!loaded.addon) return { backend: null, reason: loaded.reason };
  const addon = loaded.addon;
  const info = addon.cpuInfo();
  return { backend: nativeBackendFrom(addon), description: `${info.isa}, ${info.threads} threads`, addon };
}
