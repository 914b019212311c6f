// The MoE kernels a backend may offer (Backend.moe): the router pass, the slot plan, the
// grouped GEMMs over expert segments with the dispatch gather and the combine weights folded
// in, the SwiGLU activation and its gradient (and, optionally, GELU, GPT-OSS's clamped SwiGLU
// and the expert bias), and the weighted combine. A backend without them
// runs the MoE layer as a composition of the engine's ops; src/moe/execution/plan.ts decides
// which path a layer takes.
//
// Conventions (on top of backend.ts's):
// - Rows are "sorted rows": the T·K routed slots sorted by expert, expert e owning rows
//   [seg[e], seg[e+1]). seg and the plan's maps are host Int32Arrays (the plan drives the
//   launch geometry).
// - A matrix operand is a row-major window into a storage: element (r, c) at
//   offset + r·ld + c. An expert's matrix B_e starts expertStride elements after B_{e-1}.
// - Float operands of one call share one dtype (f32 or f64; bf16Operands below). Outputs are written, not
//   returned; the caller allocates them (uninitialized unless `accumulate`).
// - Scopes: inside `batched(fn)` the grouped GEMMs only queue and run together when fn
//   returns (they must not depend on each other); inside `rowBlocks(fn)` GEMMs, activation and
//   bias passes queue as stages run block of rows by block of rows (a stage reads only what earlier
//   stages wrote at the same rows). A backend without such scheduling runs each call at once.
import type { BF16Array, Storage } from './types.js';

/** A row-major window into a storage: element (r, c) at offset + r·ld + c. */
export interface MatrixArg {
  data: Storage;
  offset?: number;
  ld: number;
}

/** The B operand of a grouped GEMM: B_e = b + e·expertStride, stored [k, n], or [n, k] when trans. */
export interface ExpertMatrixArg extends MatrixArg {
  trans: boolean;
  expertStride: number;
}

export interface GemmRowsArgs {
  /** Row r of a segment reads a's row aIdx[r] (aIdx null: row r). */
  a: MatrixArg;
  aIdx: Int32Array | null;
  /** [S] per-row factor (null: 1). */
  scale: Storage | null;
  b: ExpertMatrixArg;
  /** With b stacked along K: op(B_e)'s rows p >= kSplit come from b2 (row p - kSplit), same layout as b. */
  b2?: { data: Storage; offset?: number; kSplit: number } | null;
  seg: Int32Array;
  c: MatrixArg;
  n: number;
  k: number;
  /** c += instead of c =. */
  accumulate: boolean;
}

export interface GemmWgradArgs {
  /** C_e [m, n] (+)= Σ_{r in seg e} scale[r] · a[arow(r), :m]ᵀ · b[brow(r), :n]; C_e = c + e·m·n. */
  a: MatrixArg;
  aIdx: Int32Array | null;
  scale: Storage | null;
  b: MatrixArg;
  bIdx: Int32Array | null;
  seg: Int32Array;
  c: Storage;
  m: number;
  n: number;
  accumulate: boolean;
}

export interface GemmSwigluArgs {
  /** As GemmRowsArgs.a / aIdx (no scale). */
  a: MatrixArg;
  aIdx: Int32Array | null;
  /** Gate_e and Up_e, laid out as GemmRowsArgs.b (the same trans, expertStride and ld). */
  gate: ExpertMatrixArg;
  up: { data: Storage; offset?: number };
  seg: Int32Array;
  /** Pre-activations: gate at columns [0, i), up at [upOffset, upOffset + i) of each row; null: not kept. */
  gu: { data: Storage; ld: number; upOffset: number } | null;
  /** [S, i] silu(gate) · up. */
  h: Storage;
  i: number;
  k: number;
}

/** Where gate and up sit in a pre-activation row: gu[r·ld + gateOffset + q·colStride], likewise up. */
export interface SwigluLayout {
  gu: Storage;
  ld: number;
  gateOffset: number;
  upOffset: number;
  colStride: number;
  rows: number;
  i: number;
}

export interface SwigluBackwardArgs extends SwigluLayout {
  /** [rows, i] upstream gradient; dh = rowScale[r] · dy[r, q] (rowScale null: 1). */
  dy: Storage;
  rowScale: Storage | null;
  /** The gate / up gradients in gu's layout (may be gu itself). */
  dgu: Storage;
  /** The recomputed h (may be dy itself), or null. */
  hOut: Storage | null;
  /** [rows] <dy_r, h_r>, or null. */
  rowDot: Storage | null;
}

export interface GemmGeluArgs {
  /** As GemmRowsArgs.a / aIdx (no scale). */
  a: MatrixArg;
  aIdx: Int32Array | null;
  /** The first projection, laid out as GemmRowsArgs.b. */
  b: ExpertMatrixArg;
  seg: Int32Array;
  /** The pre-activations [S, i] at row stride ld; null: not kept. */
  pre: { data: Storage; ld: number } | null;
  /** [S, i] gelu(pre) (exact, erf). */
  h: Storage;
  i: number;
  k: number;
}

/** Where a GELU pre-activation row sits: pre[r·ld + offset + q·colStride]. */
export interface GeluLayout {
  pre: Storage;
  ld: number;
  offset: number;
  colStride: number;
  rows: number;
  i: number;
}

export interface GeluBackwardArgs extends GeluLayout {
  /** [rows, i] upstream gradient; dh = rowScale[r] · dy[r, q] (rowScale null: 1). */
  dy: Storage;
  rowScale: Storage | null;
  /** The pre-activations' gradient in pre's layout (may be pre itself). */
  dpre: Storage;
  /** The recomputed h (may be dy itself), or null. */
  hOut: Storage | null;
  /** [rows] <dy_r, h_r>, or null. */
  rowDot: Storage | null;
}

/** GPT-OSS's clamps: gate <= limit, |up| <= limit, h = (up + 1)·gate·σ(alpha·gate). */
export interface GptOssConstants {
  limit: number;
  alpha: number;
}

export interface ExpertBiasArgs {
  /** c[r, off + q·colStride] += bias[e(r)·expertStride + q], e(r) the expert of sorted row r, q < n. */
  c: { data: Storage; ld: number; offset: number; colStride: number };
  bias: { data: Storage; offset?: number; expertStride: number };
  seg: Int32Array;
  n: number;
}

export interface CombineArgs {
  /** out[t, :] = Σ_k w[t·K + k] · y[row[t·K + k], :] (row < 0: a dropped slot; w null: 1). */
  y: MatrixArg;
  slotRows: Int32Array;
  weights: Storage | null;
  numTokens: number;
  topK: number;
  h: number;
  out: Storage;
}

/** The slot plan of a routed call: the T·K slots sorted by expert, stably, each expert keeping its first `capacity`. */
export interface RoutePlan {
  /** E+1 offsets of the sorted rows. */
  segOffsets: Int32Array;
  /** [S] slot (t·K + k) of each sorted row. */
  sortedSlots: Int32Array;
  /** [S] token of each sorted row. */
  rowTokens: Int32Array;
  /** [T·K] sorted row of each slot, -1 when the slot was dropped. */
  slotRows: Int32Array;
  /** [S] combine weight of each sorted row. */
  rowWeights: Storage;
  /** Slots over their expert's capacity. */
  droppedSlots: number;
}

export interface PlanRoutesArgs {
  /** [T, K] expert ids. */
  ids: Int32Array;
  numTokens: number;
  topK: number;
  numExperts: number;
  /** null: dropless. */
  capacity: number | null;
  /** [T, K] combine weights. */
  weights: Storage;
}

/** The router's configuration as the router kernels take it (softmax scores, top-k). */
export interface RouterShape {
  numTokens: number;
  numExperts: number;
  topK: number;
  /** Divide the chosen scores by (their sum + 1e-20). */
  renorm: boolean;
  /** Multiply the weights by this. */
  scale: number;
}

export interface RouterForwardResult {
  /** [T, E] softmax of the logits. */
  scores: Storage;
  /** [T, K] the K largest scores' experts (ties: lower index first; NaN largest). */
  ids: Int32Array;
  /** [T, K] the chosen scores, renormalised and scaled. */
  weights: Storage;
  /** [T] logsumexp of each row of logits. */
  lse: Storage;
  /** [E] slots per expert. */
  counts: Int32Array;
  /** [E] Σ_t scores[t, e]. */
  scoreSums: Float64Array;
  /** Σ_t entropy of scores[t, :]. */
  entropySum: number;
  /** Σ_t lse_t². */
  lseSquaredSum: number;
}

/** What the router's backward differentiates: <dweights, weights> + Σ lbCoef[e]·scores[t, e] + zCoef·Σ_t lse_t². */
export interface RouterGradTerms extends RouterShape {
  scores: Storage;
  lse: Storage;
  ids: Int32Array;
  /** Float64 [E], or null (0). */
  lbCoef: Float64Array | null;
  zCoef: number;
}

export interface RouterLayerBackwardArgs extends RouterGradTerms {
  /** dweights[s] = rowDw[slotRows[s]] (0 for a dropped slot); rowDw null: no weights term. */
  rowDw: Storage | null;
  slotRows: Int32Array;
  hidden: number;
  /** dwr [E, H] = dlogitsᵀ · x (both non-null or both null). */
  x: Storage | null;
  dwr: Storage | null;
  /** dx [T, H] = Σ_k rowDx[slotRows[t·K + k]] + dlogits · wr (all three non-null or all null). */
  wr: Storage | null;
  rowDx: Storage | null;
  dx: Storage | null;
}

/** bf16 <-> f32 into a given array (round to nearest even, PyTorch's NaN). */
export interface Bf16Conversions {
  widen(src: BF16Array, out: Float32Array): void;
  narrow(src: Float32Array, out: BF16Array): void;
  /** bf16 of src's rows (src.length / rowScale.length elements each) times their scale: each product in f32, rounded once. */
  narrowScaledRows(src: Float32Array, rowScale: Float32Array, out: BF16Array): void;
}

export interface MoeKernels {
  /** Whether these kernels beat the engine-op composition (the execution plan takes them by default only then). */
  readonly fast: boolean;
  /**
   * Present where gemmRows' and gemmWgrad's a / b / b2 may be bf16 (BF16Array; b2 as b) beside f32
   * floats (scale, c): products accumulated in f32 or wider, c written in f32; gemmWgrad's c may
   * also be a BF16Array when not accumulating (each f32 sum rounded once, as narrow would). With the
   * conversions (src/io/half.ts's engine casts) a bf16 experts node makes between its f32 passes
   * and its bf16 arrays, into arrays it owns. Absent: f32 / f64 operands only.
   */
  readonly bf16?: Bf16Conversions;
  gemmRows(a: GemmRowsArgs): void;
  gemmWgrad(a: GemmWgradArgs): void;
  gemmSwiglu(a: GemmSwigluArgs): void;
  swigluForward(a: SwigluLayout & { h: Storage }): void;
  swigluBackward(a: SwigluBackwardArgs): void;
  combine(a: CombineArgs): void;
  planRoutes(a: PlanRoutesArgs): RoutePlan;
  routerForward(logits: Storage, shape: RouterShape): RouterForwardResult;
  /** dlogits [T, E] of the terms, with dweights [T, K] (null: 0). */
  routerBackward(terms: RouterGradTerms, dweights: Storage | null): Storage;
  routerLayerBackward(a: RouterLayerBackwardArgs): void;
  /** The first GEMM of a GELU expert with GELU applied to its output (optional: a backend without it gets the composition). */
  gemmGelu?(a: GemmGeluArgs): void;
  geluForward?(a: GeluLayout & { h: Storage }): void;
  geluBackward?(a: GeluBackwardArgs): void;
  /** GPT-OSS's clamped SwiGLU and its gradient, in SwiGLU's layouts (optional, as gemmGelu). */
  gptOssForward?(a: SwigluLayout & GptOssConstants & { h: Storage }): void;
  gptOssBackward?(a: SwigluBackwardArgs & GptOssConstants): void;
  /** Adds each row's expert bias in place (optional, as gemmGelu; a row pass inside rowBlocks). */
  expertBias?(a: ExpertBiasArgs): void;
  /** Runs fn's independent grouped GEMMs together (see the header). */
  batched(fn: () => void): void;
  /** Runs fn's GEMMs and SwiGLU passes block of rows by block of rows (see the header). */
  rowBlocks(fn: () => void): void;
  /**
   * Inside rowBlocks: `a` (rows of rowElems) is read only in the block of rows that wrote it, so
   * the backend may keep it a block at a time and leave `a` itself unwritten.
   */
  blockLocal(a: Storage, rowElems: number): void;
}

/**
 * The slot plan kept on the device (DeviceMoeKernels.planRoutes): every array is sized for the
 * worst case, S = T·K sorted rows, of which the first seg[E] are real (the rest are padding:
 * index 0, validity 0), so nothing about the routing has to be read back to size a launch.
 */
export interface DeviceRoutePlan {
  /** [E] i32 slots routed to each expert (before capacity). */
  counts: Storage;
  /** [E + 1] i32 offsets of the sorted rows (expert e owns [seg[e], seg[e+1])). */
  seg: Storage;
  /** [T·K] i32 sorted row of each slot, -1 when the slot was dropped. */
  slotRows: Storage;
  /** [S] i32 slot (t·K + k) of each sorted row; 0 on padding rows. */
  rowSlots: Storage;
  /** [S] i32 token of each sorted row; 0 on padding rows. */
  rowTokens: Storage;
  /** [S] i32 expert of each sorted row; 0 on padding rows. */
  rowExperts: Storage;
  /** [S] float 1 on the seg[E] real rows, 0 on padding rows (in the plan's float dtype). */
  rowValid: Storage;
}

/** c [rows, n]: row r of expert e (seg[e] <= r < seg[e+1]) = a[r, :] @ op(B_e); rows past seg[E] are 0. */
export interface DeviceGemmArgs {
  /** [rows, k] */
  a: Storage;
  /** B_e = b + e·k·n, stored [k, n], or [n, k] when trans. */
  b: Storage;
  trans: boolean;
  /** [E + 1] i32 segment offsets on the device. */
  seg: Storage;
  numExperts: number;
  rows: number;
  n: number;
  k: number;
}

/** dB [E, k, n]: dB_e = Σ over expert e's rows r of a[r, :]ᵀ ⊗ dy[r, :]. */
export interface DeviceWgradArgs {
  /** [rows, k] */
  a: Storage;
  /** [rows, n] */
  dy: Storage;
  seg: Storage;
  numExperts: number;
  k: number;
  n: number;
}

/**
 * MoE kernels for a backend that cannot read its storages synchronously (WebGPU): routing ids,
 * counts and the slot plan stay device storages, and the grouped GEMMs read their segment
 * offsets on the device, so a forward and backward never wait for the GPU. The execution plan's
 * 'device' path composes the engine's ops around them (src/moe/device/). f32 only.
 */
export interface DeviceMoeKernels {
  /** [E] i32 histogram of the expert ids ([T·K] i32). */
  counts(ids: Storage, numExperts: number): Storage;
  /** The stable slot plan of [T, K] expert ids: each expert keeps its first `capacity` slots (null: all). */
  planRoutes(ids: Storage, numTokens: number, topK: number, numExperts: number, capacity: number | null): DeviceRoutePlan;
  groupedGemm(a: DeviceGemmArgs): Storage;
  groupedWgrad(a: DeviceWgradArgs): Storage;
}
