// The MoE kernels of the native addon as it exports them (native/moe/moe_napi.c, router.c,
// moe_plan.c: their header comments have the exact semantics). Each export takes one options
// object with named fields. moe.ts wraps them as the backend's MoeKernels; the addon's own tests
// call them directly.
import { addonKernels, type FloatArray } from './addon.js';

/** An expert matrix operand's layout: B_e = b + e·bExpertStride, [k, n] (ldb) or [n, k] with bTrans. */
interface ExpertLayout {
  bTrans: boolean;
  bExpertStride: number;
  ldb: number;
}

/** The A operand of a rows GEMM: row r reads a[aIdx[r] | r, :k] (lda). */
interface RowsA {
  a: FloatArray;
  aIdx: Int32Array | null;
  lda: number;
}

export interface GemmRowsOptions extends RowsA, ExpertLayout {
  scale: FloatArray | null;
  b: FloatArray;
  /** op(B_e) stacked along K: rows p >= kSplit from b2 (row p - kSplit); null: b alone. */
  b2: FloatArray | null;
  kSplit: number;
  seg: Int32Array;
  c: FloatArray;
  ldc: number;
  n: number;
  k: number;
  accumulate: boolean;
}

export interface GemmWgradOptions {
  a: FloatArray;
  aIdx: Int32Array | null;
  scale: FloatArray | null;
  lda: number;
  b: FloatArray;
  bIdx: Int32Array | null;
  ldb: number;
  seg: Int32Array;
  c: FloatArray;
  m: number;
  n: number;
  accumulate: boolean;
}

export interface GemmSwigluOptions extends RowsA, ExpertLayout {
  bGate: FloatArray;
  bUp: FloatArray;
  seg: Int32Array;
  /** null: only h is written (ldgu and upOff are ignored). */
  gu: FloatArray | null;
  ldgu: number;
  upOff: number;
  h: FloatArray;
  i: number;
  k: number;
}

export interface GemmGeluOptions extends RowsA, ExpertLayout {
  b: FloatArray;
  seg: Int32Array;
  /** null: only h is written (ldpre is ignored). */
  pre: FloatArray | null;
  ldpre: number;
  h: FloatArray;
  i: number;
  k: number;
}

/** Where an activation's pre-activations sit: gate (GELU: the only one) at gu[r·ld + gateOff + q·colStride], up at upOff. */
export interface ActLayoutOptions {
  kind: 'swiglu' | 'gelu' | 'gpt-oss';
  gu: FloatArray;
  ld: number;
  gateOff: number;
  upOff: number;
  colStride: number;
  s: number;
  i: number;
  /** GPT-OSS only. */
  limit: number;
  alpha: number;
}

export interface ActBackwardOptions extends ActLayoutOptions {
  dy: FloatArray;
  w: FloatArray | null;
  dgu: FloatArray;
  hout: FloatArray | null;
  dw: FloatArray | null;
}

export interface ExpertBiasOptions {
  c: FloatArray;
  ld: number;
  off: number;
  colStride: number;
  n: number;
  seg: Int32Array;
  bias: FloatArray;
  biasStride: number;
}

export interface CombineOptions {
  y: FloatArray;
  ldy: number;
  row: Int32Array;
  w: FloatArray | null;
  t: number;
  k: number;
  h: number;
  out: FloatArray;
}

export interface PlanRoutesOptions {
  ids: Int32Array;
  t: number;
  k: number;
  e: number;
  /** < 0: dropless. */
  capacity: number;
  weights: FloatArray;
  seg: Int32Array;
  sortedSlots: Int32Array;
  rowTok: Int32Array;
  slotRow: Int32Array;
  rowW: FloatArray;
}

/** native/moe/moe_napi.c and moe_plan.c; see their header comments for the exact semantics. All synchronous. */
export interface MoeAddonKernels {
  /** c[r, :n] (+)= scale[r] · a[aIdx[r] | r, :k] · op(B_e) for r in expert e's segment (op(B_e) stacked along K with b2). */
  moeGemmRows(o: GemmRowsOptions): void;
  /** C_e [m, n] (+)= Σ_{r in seg e} scale[r] · a[arow(r), :m]ᵀ · b[brow(r), :n]. */
  moeGemmWgrad(o: GemmWgradOptions): void;
  /** gu[r, :i] = a_r · op(Gate_e), gu[r, upOff:upOff+i] = a_r · op(Up_e), h[r, :i] = silu(gate) · up, in one pass. */
  moeGemmSwiglu(o: GemmSwigluOptions): void;
  /** pre[r, :i] = a_r · op(B_e), h[r, :i] = gelu(pre), in one pass. */
  moeGemmGelu(o: GemmGeluOptions): void;
  moeActForward(o: ActLayoutOptions & { h: FloatArray }): void;
  moeActBackward(o: ActBackwardOptions): void;
  moeExpertBias(o: ExpertBiasOptions): void;
  /** planSlots (dispatch.ts) with the kernels' per-row maps; returns S, the rows kept. */
  moePlanRoutes(o: PlanRoutesOptions): number;
  /** out[t] = Σ_k w[t·K+k] · y[row[t·K+k]] (row < 0: dropped; w null: 1). */
  moeCombine(o: CombineOptions): void;
  /** Until moeBatchRun, the grouped GEMMs only queue their work (see batched). */
  moeBatchBegin(): void;
  /** Runs the queued GEMMs in one pass over the thread pool. */
  moeBatchRun(): void;
  /** Until moeFuseRun, the grouped GEMMs and row passes queue as stages of a row fusion (see rowBlocks). */
  moeFuseBegin(): void;
  /** Runs the queued stages block of rows by block of rows (native/moe/moe_fuse.h). */
  moeFuseRun(): void;
  /**
   * Inside a fusion: `a` (rows of rowElems) is an intermediate no stage reads outside the block
   * of rows that wrote it, so each thread keeps one block of it in its own cache-sized buffer
   * and `a` itself is left unwritten.
   */
  moeFuseLocal(o: { a: FloatArray; rowElems: number }): void;
}

/** The kernels, or null when the addon is missing or predates them. */
export const moeAddonKernels = addonKernels<MoeAddonKernels>([
  'moeGemmRows',
  'moeGemmWgrad',
  'moeGemmSwiglu',
  'moeGemmGelu',
  'moeActForward',
  'moeActBackward',
  'moeExpertBias',
  'moeCombine',
  'moePlanRoutes',
  'moeBatchBegin',
  'moeBatchRun',
  'moeFuseBegin',
  'moeFuseRun',
  'moeFuseLocal',
]);

/** The shape and the terms both router backwards take: the weights' renorm and scaling, and the aux losses' coefficients. */
interface BackwardTerms {
  scores: FloatArray;
  lse: FloatArray;
  ids: Int32Array;
  t: number;
  e: number;
  k: number;
  renorm: boolean;
  scale: number;
  lbCoef: Float64Array | null;
  zCoef: number;
}

export interface RouterAddonKernels {
  /** softmax, top-k, gathered (renormalised, scaled) weights, logsumexp, counts; sums = [Σ_t scores[t, e] for e, Σ_t entropy_t, Σ_t lse_t²]. */
  routerForward(o: {
    logits: FloatArray;
    t: number;
    e: number;
    k: number;
    renorm: boolean;
    scale: number;
    scores: FloatArray;
    ids: Int32Array;
    weights: FloatArray;
    lse: FloatArray;
    counts: Int32Array;
    sums: Float64Array;
  }): void;
  /** dlogits of <dweights, weights> + Σ lbCoef[e]·scores[t, e] + zCoef·Σ lse_t². */
  routerBackward(o: BackwardTerms & { dweights: FloatArray | null; dlogits: FloatArray }): void;
  /**
   * The router's part of an MoE layer node's backward: dlogits (kept internally) as
   * routerBackward with dweights[s] = rowDw[slotRow[s]] (0 for a dropped slot); then
   * dwr [e, h] = dlogitsᵀ·x and dx [t, h] = Σ_k rowDx[slotRow[t·K+k]] + dlogits·wr (null: skipped).
   */
  routerLayerBackward(
    o: BackwardTerms & {
      rowDw: FloatArray | null;
      slotRow: Int32Array;
      x: FloatArray | null;
      dwr: FloatArray | null;
      wr: FloatArray | null;
      rowDx: FloatArray | null;
      h: number;
      dx: FloatArray | null;
    },
  ): void;
}

/** The router kernels, or null when the addon is missing or predates them. */
export const routerAddonKernels = addonKernels<RouterAddonKernels>(['routerForward', 'routerBackward', 'routerLayerBackward']);
