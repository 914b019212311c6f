// The kernel interface every backend implements.
//
// Conventions (read these before adding a kernel):
// - Storages are contiguous, row-major. Kernels never see strides except the broadcast
//   strides of `binary` / `where` (0 = that operand is broadcast along the axis).
// - An op "along an axis" views its input as [outer, n, inner] where n is the axis length.
// - Kernels return fresh storages unless the name says `InPlace` / the doc says "mutates".
//   Mutating kernels are only ever called on storages the caller just allocated (a fresh
//   zero target) or on optimiser state, never on a tensor the user can see mid-graph.
// - Float kernels accept f32 and f64 (f64 drives the gradient checks); index arguments are
//   i32 storages.
// - A device backend (WebGPU) enqueues work and returns at once; only `read` waits. CPU
//   backends also offer `readSync`.
import type { DeviceMoeKernels, MoeKernels } from './moe.js';
import type { DType, Storage, TypedArray } from './types.js';

export type UnaryOp =
  | 'neg'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'abs'
  | 'tanh'
  | 'sigmoid'
  | 'silu'
  | 'relu'
  | 'gelu' // exact: x * Phi(x) with erf
  | 'gelu_tanh' // tanh approximation
  | 'sign'
  | 'square'
  | 'reciprocal';

export type BinaryOp =
  | 'add'
  | 'sub'
  | 'mul'
  | 'div'
  | 'pow'
  | 'maximum'
  | 'minimum'
  // comparisons produce 1 / 0 in the output dtype
  | 'eq'
  | 'ne'
  | 'lt'
  | 'le'
  | 'gt'
  | 'ge';

export type ReduceOp = 'sum' | 'max' | 'min' | 'logsumexp';

export interface NormResult {
  y: Storage;
  /** per-row mean (layerNorm only) */
  mean: Storage;
  /** per-row 1/sqrt(var + eps) (layerNorm) or 1/sqrt(mean(x^2) + eps) (rmsNorm) */
  rstd: Storage;
}

export interface NormGrads {
  dx: Storage;
  dw: Storage | null;
  db: Storage | null;
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1 - beta1^t and 1 - beta2^t for the bias correction of step t */
  biasCorrection1: number;
  biasCorrection2: number;
}

export interface Backend {
  readonly name: string;

  // ---- memory -----------------------------------------------------------------------
  /** Wrap host data (takes ownership: the caller must not mutate `a` afterwards). */
  fromArray(a: TypedArray): Storage;
  full(dtype: DType, n: number, value: number): Storage;
  /** Synchronous read; CPU backends only (device backends throw and point to `read`). */
  readSync(s: Storage): TypedArray;
  read(s: Storage): Promise<TypedArray>;
  cast(s: Storage, dtype: DType): Storage;
  copy(s: Storage): Storage;
  length(s: Storage): number;
  dtypeOf(s: Storage): DType;

  // ---- elementwise ------------------------------------------------------------------
  unary(op: UnaryOp, x: Storage): Storage;
  /** dx = dy * f'(x) for a unary op f (same length as x). */
  unaryBackward(op: UnaryOp, x: Storage, dy: Storage): Storage;
  /** out[i] = a[..] op b[..] over outShape with broadcast strides. */
  binary(
    op: BinaryOp,
    a: Storage,
    aStrides: readonly number[],
    b: Storage,
    bStrides: readonly number[],
    outShape: readonly number[],
    outDtype: DType,
  ): Storage;
  /** out = cond != 0 ? a : b, broadcast like `binary`; out dtype = a's dtype. */
  where(
    cond: Storage,
    condStrides: readonly number[],
    a: Storage,
    aStrides: readonly number[],
    b: Storage,
    bStrides: readonly number[],
    outShape: readonly number[],
  ): Storage;
  /** min(max(x, lo), hi); lo/hi may be +-Infinity. */
  clamp(x: Storage, lo: number, hi: number): Storage;

  // ---- reductions / scans along an axis of [outer, n, inner] ------------------------
  reduce(op: ReduceOp, x: Storage, outer: number, n: number, inner: number): Storage;
  /** i32 index of the max / min along the axis; ties go to the lowest index. */
  argReduce(op: 'argmax' | 'argmin', x: Storage, outer: number, n: number, inner: number): Storage;
  cumsum(x: Storage, outer: number, n: number, inner: number, reverse: boolean): Storage;

  // ---- linear algebra -----------------------------------------------------------------
  /**
   * out[b] = op(a[b]) @ op(b[b]) with op(a) [m,k], op(b) [k,n]; a stored [m,k] (or [k,m] if
   * transA), b stored [k,n] (or [n,k] if transB). Batch strides in elements; 0 broadcasts.
   * Returns [batch, m, n].
   */
  matmul(
    a: Storage,
    b: Storage,
    batch: number,
    m: number,
    k: number,
    n: number,
    transA: boolean,
    transB: boolean,
    aBatchStride: number,
    bBatchStride: number,
  ): Storage;

  // ---- row-wise fused ops (rows x n) --------------------------------------------------
  softmax(x: Storage, rows: number, n: number, log: boolean): Storage;
  /** Given y = softmax(x) (or log-softmax if `log`) and dy, returns dx. */
  softmaxBackward(y: Storage, dy: Storage, rows: number, n: number, log: boolean): Storage;
  /**
   * Optional (cross-entropy composes log-softmax and gather where absent): picked[r] =
   * logSoftmax(x)[r, targets[r]] (i32 targets in [0, n)) and each row's logsumexp, the bits of
   * the composed path's.
   */
  logSoftmaxPick?(x: Storage, targets: Storage, rows: number, n: number): { picked: Storage; lse: Storage };
  /** Its gradient for g [rows] on the picks: dx[r, j] = [j = targets[r]] g[r] - exp(x[r, j] - lse[r]) g[r]. */
  logSoftmaxPickBackward?(x: Storage, lse: Storage, targets: Storage, g: Storage, rows: number, n: number): Storage;
  layerNorm(x: Storage, weight: Storage | null, bias: Storage | null, rows: number, n: number, eps: number): NormResult;
  layerNormBackward(
    dy: Storage,
    x: Storage,
    weight: Storage | null,
    mean: Storage,
    rstd: Storage,
    rows: number,
    n: number,
    withBias: boolean,
  ): NormGrads;
  /** `mean` in the result is unused (empty). */
  rmsNorm(x: Storage, weight: Storage | null, rows: number, n: number, eps: number): NormResult;
  rmsNormBackward(dy: Storage, x: Storage, weight: Storage | null, rstd: Storage, rows: number, n: number): NormGrads;

  // ---- layout -----------------------------------------------------------------------
  /** Materialise x (of `shape`) permuted by `perm` (out.shape[i] = shape[perm[i]]). */
  permute(x: Storage, shape: readonly number[], perm: readonly number[]): Storage;
  /** Copy the box [starts, starts + sizes) out of x (of `shape`). */
  sliceCopy(x: Storage, shape: readonly number[], starts: readonly number[], sizes: readonly number[]): Storage;
  /** Mutates `target` (of `shape`): target[box at starts] += src (src is the box's shape). */
  sliceAddInPlace(target: Storage, shape: readonly number[], starts: readonly number[], src: Storage, srcShape: readonly number[]): void;

  // ---- indexing along the middle axis of [outer, n, inner] ----------------------------
  /** out[o, j, i] = x[o, idx[j], i] -> [outer, m, inner] with m = len(idx). */
  indexSelect(x: Storage, outer: number, n: number, inner: number, idx: Storage): Storage;
  /** Mutates target [outer, n, inner]: target[o, idx[j], i] += src[o, j, i]. */
  indexAddInPlace(target: Storage, outer: number, n: number, inner: number, idx: Storage, src: Storage): void;
  /** torch.gather: out[o, j, i] = x[o, idx[o, j, i], i]; idx is [outer, m, inner]. */
  gather(x: Storage, outer: number, n: number, inner: number, idx: Storage, m: number): Storage;
  /** Mutates target [outer, n, inner]: target[o, idx[o,j,i], i] += src[o, j, i]. */
  scatterAddInPlace(target: Storage, outer: number, n: number, inner: number, idx: Storage, src: Storage, m: number): void;

  // ---- selection / sorting (rows x n) -----------------------------------------------------
  /** The k largest (or smallest) per row, sorted; equal values keep the lower index first. */
  topk(x: Storage, rows: number, n: number, k: number, largest: boolean): { values: Storage; indices: Storage };
  /** Stable argsort per row (i32). */
  argsort(x: Storage, rows: number, n: number, descending: boolean): Storage;

  // ---- attention: q [bh, tq, d], k/v [bh, tk, d] ----------------------------------------------
  /** out [bh, tq, d] and lse [bh, tq] (logsumexp of the scaled, masked scores per query). */
  attention(
    q: Storage,
    k: Storage,
    v: Storage,
    bh: number,
    tq: number,
    tk: number,
    d: number,
    scale: number,
    causal: boolean,
  ): { out: Storage; lse: Storage };
  attentionBackward(
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    lse: Storage,
    dout: Storage,
    bh: number,
    tq: number,
    tk: number,
    d: number,
    scale: number,
    causal: boolean,
  ): { dq: Storage; dk: Storage; dv: Storage };

  // ---- optimiser -----------------------------------------------------------------------------
  /** Mutates param, m, v: decoupled weight decay, Adam moments, bias-corrected update. */
  adamwInPlace(param: Storage, grad: Storage, m: Storage, v: Storage, h: AdamWHyper): void;
  /** Mutates y: y += alpha * x (gradient accumulation). */
  axpyInPlace(y: Storage, x: Storage, alpha: number): void;

  // ---- host-array helpers a CPU backend may offer (their callers have JavaScript twins) -------
  /** sq + Σ x[i]² in float64, one element after the other (gradient clipping's norm, src/optim/clip.ts). */
  sumSquares?(x: Float32Array | Float64Array, sq: number): number;
  /**
   * Dropout's mask (src/ops/dropout.ts): mask[i] = r_i >= threshold ? keep : 0, r_i the next
   * uint32 draws of xoshiro128** from `state` (src/tensor/random.ts's Generator words, advanced
   * in place), in Generator.nextU32's order.
   */
  dropoutMask?(mask: Float32Array | Float64Array, state: Uint32Array, threshold: number, keep: number): void;

  /** Storages live on a device (webgpu): readSync throws, only `read` waits; code above then reads asynchronously and skips host-side checks of tensor contents. */
  readonly onDevice?: boolean;

  // ---- MoE ---------------------------------------------------------------------------------
  /** The MoE kernels (moe.ts), where the backend has them; without, MoE layers compose the ops above. */
  readonly moe?: MoeKernels;
  /** MoE kernels over device-resident routing (moe.ts), on a backend that cannot read synchronously: the execution plan's 'device' path. */
  readonly deviceMoe?: DeviceMoeKernels;
}
