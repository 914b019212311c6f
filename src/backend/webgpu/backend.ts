// The webgpu Backend: storages are GPU buffers (GpuStorage), kernels are WGSL compute passes
// enqueued without waiting; only `read` waits. f32 and i32 only (WGSL has no f64).
//
// Storage's static type is the CPU backends' typed array (code above the backend never looks
// inside a Storage); GpuStorage objects travel through it opaquely and are checked here.
import type { Backend } from '../backend.js';
import { type DType, type Storage, type TypedArray, isHalfArray, isHalfDType } from '../types.js';
import { attention, attentionBackward } from './kernels/attention.js';
import { binary, cast, clamp, fill, unary, unaryBackward, where } from './kernels/elementwise.js';
import { gather, indexAddInPlace, indexSelect, scatterAddInPlace } from './kernels/indexing.js';
import { permute, sliceAddInPlace, sliceCopy } from './kernels/layout.js';
import { matmul } from './kernels/linalg.js';
import { adamwInPlace, axpyInPlace } from './kernels/optim.js';
import { argReduce, cumsum, reduce } from './kernels/reduce.js';
import { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward, softmax, softmaxBackward } from './kernels/rowwise.js';
import { argsort, topk } from './kernels/sort.js';
import { createWebGPUDeviceMoe } from './moe.js';
import { F64_MESSAGE, type GpuRuntime, GpuStorage } from './runtime.js';

/** A Storage the caller handed us, as the GPU storage it must be. */
function gpu(s: Storage): GpuStorage {
  const g = s as unknown;
  if (g instanceof GpuStorage) return g;
  throw new TypeError('webgpu: got a host array where a GPU tensor was expected (a tensor from another backend; move it with fromArray)');
}
const HALF_MESSAGE =
  'webgpu: bf16 / f16 tensors are not supported on this backend yet; use the native or reference backend (MOEKIT_BACKEND=native)';
const opt = (s: Storage | null) => (s ? gpu(s) : null);
const host = (g: GpuStorage) => g as unknown as Storage;
function deviceDType(dtype: DType): 'f32' | 'i32' {
  if (dtype === 'f64') throw new TypeError(F64_MESSAGE);
  if (isHalfDType(dtype)) throw new TypeError(HALF_MESSAGE);
  return dtype;
}

export function createWebGPUBackend(rt: GpuRuntime): Backend {
  return {
    name: 'webgpu',
    onDevice: true,
    fromArray(a: TypedArray): Storage {
      if (a instanceof Float64Array) throw new TypeError(F64_MESSAGE);
      if (isHalfArray(a)) throw new TypeError(HALF_MESSAGE);
      return host(rt.upload(a));
    },
    full: (dtype, n, value) => host(fill(rt, deviceDType(dtype), n, value)),
    readSync(): TypedArray {
      throw new Error(
        'webgpu: tensors live on the GPU and cannot be read synchronously; use `await t.data()` (dataSync / item / toArray are for CPU backends)',
      );
    },
    read: (s) => rt.read(gpu(s)),
    cast: (s, dtype) => host(cast(rt, gpu(s), deviceDType(dtype))),
    copy(s: Storage): Storage {
      const src = gpu(s);
      const dst = rt.alloc(src.dtype, src.length);
      rt.copy(`copy (${src.dtype}[${src.length}])`, src, dst);
      return host(dst);
    },
    length: (s) => gpu(s).length,
    dtypeOf: (s) => gpu(s).dtype,
    unary: (op, x) => host(unary(rt, op, gpu(x))),
    unaryBackward: (op, x, dy) => host(unaryBackward(rt, op, gpu(x), gpu(dy))),
    binary: (op, a, as, b, bs, shape, dtype) => host(binary(rt, op, gpu(a), as, gpu(b), bs, shape, deviceDType(dtype))),
    where: (c, cs, a, as, b, bs, shape) => host(where(rt, gpu(c), cs, gpu(a), as, gpu(b), bs, shape)),
    clamp: (x, lo, hi) => host(clamp(rt, gpu(x), lo, hi)),
    reduce: (op, x, outer, n, inner) => host(reduce(rt, op, gpu(x), outer, n, inner)),
    argReduce: (op, x, outer, n, inner) => host(argReduce(rt, op, gpu(x), outer, n, inner)),
    cumsum: (x, outer, n, inner, reverse) => host(cumsum(rt, gpu(x), outer, n, inner, reverse)),
    matmul: (a, b, batch, m, k, n, ta, tb, as, bs) => host(matmul(rt, gpu(a), gpu(b), batch, m, k, n, ta, tb, as, bs)),
    softmax: (x, rows, n, log) => host(softmax(rt, gpu(x), rows, n, log)),
    softmaxBackward: (y, dy, rows, n, log) => host(softmaxBackward(rt, gpu(y), gpu(dy), rows, n, log)),
    layerNorm(x, w, b, rows, n, eps) {
      const r = layerNorm(rt, gpu(x), opt(w), opt(b), rows, n, eps);
      return { y: host(r.y), mean: host(r.mean), rstd: host(r.rstd) };
    },
    layerNormBackward(dy, x, w, mean, rstd, rows, n, withBias) {
      const g = layerNormBackward(rt, gpu(dy), gpu(x), opt(w), gpu(mean), gpu(rstd), rows, n, withBias);
      return { dx: host(g.dx), dw: g.dw && host(g.dw), db: g.db && host(g.db) };
    },
    rmsNorm(x, w, rows, n, eps) {
      const r = rmsNorm(rt, gpu(x), opt(w), rows, n, eps);
      return { y: host(r.y), mean: host(r.mean), rstd: host(r.rstd) };
    },
    rmsNormBackward(dy, x, w, rstd, rows, n) {
      const g = rmsNormBackward(rt, gpu(dy), gpu(x), opt(w), gpu(rstd), rows, n);
      return { dx: host(g.dx), dw: g.dw && host(g.dw), db: null };
    },
    permute: (x, shape, perm) => host(permute(rt, gpu(x), shape, perm)),
    sliceCopy: (x, shape, starts, sizes) => host(sliceCopy(rt, gpu(x), shape, starts, sizes)),
    sliceAddInPlace: (t, shape, starts, src, srcShape) => sliceAddInPlace(rt, gpu(t), shape, starts, gpu(src), srcShape),
    indexSelect: (x, outer, n, inner, idx) => host(indexSelect(rt, gpu(x), outer, n, inner, gpu(idx))),
    indexAddInPlace: (t, outer, n, inner, idx, src) => indexAddInPlace(rt, gpu(t), outer, n, inner, gpu(idx), gpu(src)),
    gather: (x, outer, n, inner, idx, m) => host(gather(rt, gpu(x), outer, n, inner, gpu(idx), m)),
    scatterAddInPlace: (t, outer, n, inner, idx, src, m) => scatterAddInPlace(rt, gpu(t), outer, n, inner, gpu(idx), gpu(src), m),
    topk(x, rows, n, k, largest) {
      const r = topk(rt, gpu(x), rows, n, k, largest);
      return { values: host(r.values), indices: host(r.indices) };
    },
    argsort: (x, rows, n, desc) => host(argsort(rt, gpu(x), rows, n, desc)),
    attention(q, k, v, bh, tq, tk, d, scale, causal) {
      const r = attention(rt, gpu(q), gpu(k), gpu(v), bh, tq, tk, d, scale, causal);
      return { out: host(r.out), lse: host(r.lse) };
    },
    attentionBackward(q, k, v, out, lse, dout, bh, tq, tk, d, scale, causal) {
      const g = attentionBackward(rt, gpu(q), gpu(k), gpu(v), gpu(out), gpu(lse), gpu(dout), bh, tq, tk, d, scale, causal);
      return { dq: host(g.dq), dk: host(g.dk), dv: host(g.dv) };
    },
    adamwInPlace: (p, g, m, v, h) => adamwInPlace(rt, gpu(p), gpu(g), gpu(m), gpu(v), h),
    axpyInPlace: (y, x, alpha) => axpyInPlace(rt, gpu(y), gpu(x), alpha),
    deviceMoe: createWebGPUDeviceMoe(rt, gpu),
  };
}
