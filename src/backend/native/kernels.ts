/**
 * The kernel exports of moekit_native besides matmul (native/ops/elementwise.c, reduce.c,
 * rowwise.c, layout.c, indexing.c, sort.c, attention.c, optim.c). `NativeAddon` extends
 * this interface. Every function writes into caller-allocated outputs (or mutates its
 * first argument for the in-place ones), returns nothing, and is synchronous. Arguments
 * are validated: a wrong array type throws a TypeError, a too-short array or a bad size
 * a RangeError. Float kernels take Float32Array or Float64Array, all arguments of one
 * kind. Semantics are those of the same-named Backend methods (src/backend/backend.ts).
 */
import type { BinaryOp, ReduceOp, UnaryOp } from '../backend.js';

type FloatArray = Float32Array | Float64Array;
type AnyArray = Float32Array | Float64Array | Int32Array;

export interface NativeKernels {
  // ---- elementwise (native/ops/elementwise.c) ----
  unary(op: UnaryOp, x: FloatArray, out: FloatArray): void;
  unaryBackward(op: UnaryOp, x: FloatArray, dy: FloatArray, out: FloatArray): void;
  /** a, b, out of one kind; Int32Array only for add, sub, maximum, minimum, comparisons. */
  binary(
    op: BinaryOp,
    a: AnyArray,
    aStrides: readonly number[],
    b: AnyArray,
    bStrides: readonly number[],
    outShape: readonly number[],
    out: AnyArray,
  ): void;
  /** cond of any kind; a, b, out of one kind. */
  where(
    cond: AnyArray,
    condStrides: readonly number[],
    a: AnyArray,
    aStrides: readonly number[],
    b: AnyArray,
    bStrides: readonly number[],
    outShape: readonly number[],
    out: AnyArray,
  ): void;
  clamp(x: FloatArray, lo: number, hi: number, out: FloatArray): void;
  /** Converts to out's kind (to int32: truncate, NaN/Inf -> 0, wrap like ToInt32). */
  cast(x: AnyArray, out: AnyArray): void;

  // ---- reductions along [outer, n, inner] (native/ops/reduce.c) ----
  reduce(op: ReduceOp, x: FloatArray, outer: number, n: number, inner: number, out: FloatArray): void;
  argReduce(op: 'argmax' | 'argmin', x: FloatArray, outer: number, n: number, inner: number, out: Int32Array): void;
  cumsum(x: FloatArray, outer: number, n: number, inner: number, reverse: boolean, out: FloatArray): void;

  // ---- row-wise over [rows, n] (native/ops/rowwise.c) ----
  softmax(x: FloatArray, rows: number, n: number, log: boolean, out: FloatArray): void;
  softmaxBackward(y: FloatArray, dy: FloatArray, rows: number, n: number, log: boolean, dx: FloatArray): void;
  logSoftmaxPick(x: FloatArray, targets: Int32Array, rows: number, n: number, out: FloatArray, lse: FloatArray): void;
  logSoftmaxPickBackward(x: FloatArray, lse: FloatArray, targets: Int32Array, g: FloatArray, rows: number, n: number, dx: FloatArray): void;
  layerNorm(
    x: FloatArray,
    weight: FloatArray | null,
    bias: FloatArray | null,
    rows: number,
    n: number,
    eps: number,
    y: FloatArray,
    mean: FloatArray,
    rstd: FloatArray,
  ): void;
  /** dw / db: zero-initialised outputs, or null when not wanted. */
  layerNormBackward(
    dy: FloatArray,
    x: FloatArray,
    weight: FloatArray | null,
    mean: FloatArray,
    rstd: FloatArray,
    rows: number,
    n: number,
    dx: FloatArray,
    dw: FloatArray | null,
    db: FloatArray | null,
  ): void;
  rmsNorm(x: FloatArray, weight: FloatArray | null, rows: number, n: number, eps: number, y: FloatArray, rstd: FloatArray): void;
  rmsNormBackward(
    dy: FloatArray,
    x: FloatArray,
    weight: FloatArray | null,
    rstd: FloatArray,
    rows: number,
    n: number,
    dx: FloatArray,
    dw: FloatArray | null,
  ): void;

  // ---- layout (native/ops/layout.c): any kind, x and out alike ----
  permute(x: AnyArray, shape: readonly number[], perm: readonly number[], out: AnyArray): void;
  sliceCopy(x: AnyArray, shape: readonly number[], starts: readonly number[], sizes: readonly number[], out: AnyArray): void;
  sliceAddInPlace(target: AnyArray, shape: readonly number[], starts: readonly number[], src: AnyArray, srcShape: readonly number[]): void;

  // ---- indexing along [outer, n, inner] (native/ops/indexing.c); indices checked first ----
  indexSelect(x: AnyArray, outer: number, n: number, inner: number, idx: Int32Array, out: AnyArray): void;
  indexAddInPlace(target: AnyArray, outer: number, n: number, inner: number, idx: Int32Array, src: AnyArray): void;
  gather(x: AnyArray, outer: number, n: number, inner: number, idx: Int32Array, m: number, out: AnyArray): void;
  scatterAddInPlace(target: AnyArray, outer: number, n: number, inner: number, idx: Int32Array, src: AnyArray, m: number): void;

  // ---- selection / sorting over [rows, n] (native/ops/sort.c) ----
  topk(x: AnyArray, rows: number, n: number, k: number, largest: boolean, values: AnyArray, indices: Int32Array): void;
  argsort(x: AnyArray, rows: number, n: number, descending: boolean, out: Int32Array): void;

  // ---- attention (native/ops/attention.c) ----
  attention(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    bh: number,
    tq: number,
    tk: number,
    d: number,
    scale: number,
    causal: boolean,
    out: FloatArray,
    lse: FloatArray,
  ): void;
  attentionBackward(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    out: FloatArray,
    lse: FloatArray,
    dout: FloatArray,
    bh: number,
    tq: number,
    tk: number,
    d: number,
    scale: number,
    causal: boolean,
    dq: FloatArray,
    dk: FloatArray,
    dv: FloatArray,
  ): void;

  // ---- optimiser (native/ops/optim.c): mutate their first arguments ----
  adamw(
    param: FloatArray,
    grad: FloatArray,
    m: FloatArray,
    v: FloatArray,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    biasCorrection1: number,
    biasCorrection2: number,
  ): void;
  /** y += alpha * x */
  axpy(y: FloatArray, x: FloatArray, alpha: number): void;
  /** sq + the sum of x[i]^2, in float64, in index order */
  sumSquares(x: FloatArray, sq: number): number;

  // ---- dropout (native/ops/dropout.c) ----
  /** mask[i] = (next xoshiro128** draw from state, advanced in place) >= threshold ? keep : 0 */
  dropoutMask(mask: FloatArray, state: Uint32Array, threshold: number, keep: number): void;
}
