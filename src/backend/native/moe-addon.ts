// The MoE kernels of the native addon as it exports them (native/moe/moe.c, router.c, moe_plan.c:
// their header comments have the exact semantics). moe.ts wraps them as the backend's MoeKernels;
// the addon's own tests call them directly.
import { addonKernels, type FloatArray } from './addon.js';

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
export interface MoeAddonKernels {
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
  moeSwigluForward(
    gu: FloatArray,
    ld: number,
    gateOff: number,
    upOff: number,
    colStride: number,
    s: number,
    i: number,
    h: FloatArray,
  ): void;
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
export const moeAddonKernels = addonKernels<MoeAddonKernels>([
  'moeGemmRows',
  'moeGemmRowsStackedK',
  'moeGemmWgrad',
  'moeGemmSwiglu',
  'moeSwigluForward',
  'moeSwigluBackward',
  'moeCombine',
  'moePlanRoutes',
  'moeBatchBegin',
  'moeBatchRun',
  'moeFuseBegin',
  'moeFuseRun',
  'moeFuseLocal',
]);

/** The shape and the terms both router backwards take: the weights' renorm and scaling, and the aux losses' coefficients. */
type BackwardTerms = [t: number, e: number, k: number, renorm: boolean, scale: number, lbCoef: Float64Array | null, zCoef: number];

export interface RouterAddonKernels {
  /** softmax, top-k, gathered (renormalised, scaled) weights, logsumexp, counts; sums = [Σ_t scores[t, e] for e, Σ_t entropy_t, Σ_t lse_t²]. */
  routerForward(
    logits: FloatArray,
    t: number,
    e: number,
    k: number,
    renorm: boolean,
    scale: number,
    scores: FloatArray,
    ids: Int32Array,
    weights: FloatArray,
    lse: FloatArray,
    counts: Int32Array,
    sums: Float64Array,
  ): void;
  /** dlogits of <dweights, weights> + Σ lbCoef[e]·scores[t, e] + zCoef·Σ lse_t². */
  routerBackward(
    ...args: [scores: FloatArray, lse: FloatArray, ids: Int32Array, dweights: FloatArray | null, ...BackwardTerms, dlogits: FloatArray]
  ): void;
  /**
   * The router's part of a fused MoE layer's backward: dlogits (kept internally) as
   * routerBackward with dweights[s] = rowDw[slotRow[s]] (0 for a dropped slot); then
   * dwr [e, h] = dlogitsᵀ·x and dx [t, h] = Σ_k rowDx[slotRow[t·K+k]] + dlogits·wr (null: skipped).
   */
  routerLayerBackward(
    ...args: [
      scores: FloatArray,
      lse: FloatArray,
      ids: Int32Array,
      rowDw: FloatArray | null,
      slotRow: Int32Array,
      ...BackwardTerms,
      x: FloatArray | null,
      dwr: FloatArray | null,
      wr: FloatArray | null,
      rowDx: FloatArray | null,
      h: number,
      dx: FloatArray | null,
    ]
  ): void;
}

/** The router kernels, or null when the addon is missing or predates them. */
export const routerAddonKernels = addonKernels<RouterAddonKernels>(['routerForward', 'routerBackward', 'routerLayerBackward']);
