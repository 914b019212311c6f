// The fused MoE kernels of the native addon (native/moe/moe.c) and when the fused path may run.
import { addonKernels } from '../../backend/native/addon.js';

export type FloatArray = Float32Array | Float64Array;

/** The arguments of the rows GEMMs after their B operand(s). */
type RowsGemmTail = [
  bTrans: boolean,
  bExpertStride: number,
  ldb: number,
  seg: Int32Array,
  c: FloatArray,
  ldc: number,
  n: number,
  k: number,
  accumulate: boolean,
];

/** native/moe/moe.c; see its header comment for the exact semantics. All synchronous. */
export interface MoeNativeKernels {
  /** c[r, :n] (+)= scale[r] · a[aIdx[r] | r, :k] · op(B_e) for r in expert e's segment. */
  moeGemmRows(a: FloatArray, aIdx: Int32Array | null, scale: FloatArray | null, lda: number, b: FloatArray, ...rest: RowsGemmTail): void;
  /** moeGemmRows with op(B_e) stacked along K: rows p < kSplit from b, the rest from b2 (row p - kSplit). */
  moeGemmRowsStackedK(
    a: FloatArray,
    aIdx: Int32Array | null,
    scale: FloatArray | null,
    lda: number,
    b: FloatArray,
    b2: FloatArray,
    kSplit: number,
    ...rest: RowsGemmTail
  ): void;
  /** C_e [m, n] (+)= Σ_{r in seg e} scale[r] · a[arow(r), :m]ᵀ · b[brow(r), :n]. */
  moeGemmWgrad(
    a: FloatArray,
    aIdx: Int32Array | null,
    scale: FloatArray | null,
    lda: number,
    b: FloatArray,
    bIdx: Int32Array | null,
    ldb: number,
    seg: Int32Array,
    c: FloatArray,
    m: number,
    n: number,
    accumulate: boolean,
  ): void;
  /**
   * The gated first GEMM in one pass: gu[r, :i] = a_r · op(Gate_e), gu[r, upOff:upOff+i] =
   * a_r · op(Up_e), h[r, :i] = silu(gate) · up (Gate_e / Up_e laid out as moeGemmRows's B_e).
   * gu null: only h is written (ldgu and upOff are ignored).
   */
  moeGemmSwiglu(
    a: FloatArray,
    aIdx: Int32Array | null,
    lda: number,
    bGate: FloatArray,
    bUp: FloatArray,
    bTrans: boolean,
    bExpertStride: number,
    ldb: number,
    seg: Int32Array,
    gu: FloatArray | null,
    ldgu: number,
    upOff: number,
    h: FloatArray,
    i: number,
    k: number,
  ): void;
  moeSwigluForward(gu: FloatArray, ld: number, gateOff: number, upOff: number, colStride: number, s: number, i: number, h: FloatArray): void;
  moeSwigluBackward(
    gu: FloatArray,
    ld: number,
    gateOff: number,
    upOff: number,
    colStride: number,
    s: number,
    i: number,
    dy: FloatArray,
    w: FloatArray | null,
    dgu: FloatArray,
    hout: FloatArray | null,
    dw: FloatArray | null,
  ): void;
  /**
   * planSlots (dispatch.ts) with the fused kernels' per-row maps: seg [E+1], and for the kept
   * rows sortedSlots, rowTok (slot / K), rowW (weights[slot]); slotRow [T·K] (-1: dropped).
   * capacity < 0: dropless. Returns S, the rows kept.
   */
  moePlanRoutes(
    ids: Int32Array,
    t: number,
    k: number,
    e: number,
    capacity: number,
    weights: FloatArray,
    seg: Int32Array,
    sortedSlots: Int32Array,
    rowTok: Int32Array,
    slotRow: Int32Array,
    rowW: FloatArray,
  ): number;
  /** out[t] = Σ_k w[t·K+k] · y[row[t·K+k]] (row < 0: dropped; w null: 1). */
  moeCombine(y: FloatArray, ldy: number, row: Int32Array, w: FloatArray | null, t: number, k: number, h: number, out: FloatArray): void;
  /** Until moeBatchRun, the grouped GEMMs only queue their work (see batched). */
  moeBatchBegin(): void;
  /** Runs the queued GEMMs in one pass over the thread pool. */
  moeBatchRun(): void;
  /** Until moeFuseRun, the grouped GEMMs and SwiGLU passes queue as stages of a row fusion (see fusedRows). */
  moeFuseBegin(): void;
  /** Runs the queued stages block of rows by block of rows (native/moe/moe_fuse.h). */
  moeFuseRun(): void;
  /**
   * Inside a fusion: `a` (rows of rowElems) is an intermediate no stage reads outside the block
   * of rows that wrote it, so each thread keeps one block of it in its own cache-sized buffer
   * and `a` itself is left unwritten.
   */
  moeFuseLocal(a: FloatArray, rowElems: number): void;
}

/** The kernels, or null when the addon is missing or predates them. */
export const moeKernels = addonKernels<MoeNativeKernels>(['moeGemmRows', 'moeGemmRowsStackedK', 'moeGemmWgrad', 'moeGemmSwiglu', 'moeSwigluForward', 'moeSwigluBackward', 'moeCombine', 'moePlanRoutes', 'moeBatchBegin', 'moeBatchRun', 'moeFuseBegin', 'moeFuseRun', 'moeFuseLocal']);

/** Calls fn between open() and run(); run() closes what open() began even when fn throws. */
function queuedBetween(open: () => void, run: () => void, fn: () => void): void {
  open();
  try {
    fn();
  } finally {
    run();
  }
}

/** Runs fn's grouped GEMMs (independent of each other) together in one pass over the thread pool. */
export function batched(k: MoeNativeKernels, fn: () => void): void {
  queuedBetween(() => k.moeBatchBegin(), () => k.moeBatchRun(), fn);
}

/**
 * Runs fn's grouped GEMMs and SwiGLU passes as one row fusion (native/moe/moe_fuse.h): each thread
 * takes a share of the sorted rows and runs every stage, in call order, on a block of rows
 * before the next block, so a stage may read what an earlier one wrote at the same rows only.
 */
export function fusedRows(k: MoeNativeKernels, fn: () => void): void {
  queuedBetween(() => k.moeFuseBegin(), () => k.moeFuseRun(), fn);
}

/**
 * MOEKIT_MOE_FUSED=0 forces the reference composition of simple ops (dispatch, grouped
 * matmuls, activation, combine) even where the fused native kernels could run.
 */
export function fusedMoeEnabled(): boolean {
  return process.env.MOEKIT_MOE_FUSED !== '0';
}
