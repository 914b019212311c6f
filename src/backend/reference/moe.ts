// The MoE kernels (../moe.ts) in plain TypeScript: the twins the native kernels are held to
// (test/backend-moe-kernels.test.ts), and the kernel path on the reference backend when a test
// or MOEKIT_MOE_PATH=kernels asks for it. Sums run in float64 and round once per output.
// Scheduling scopes run their calls at once (`fast: false`: the plan prefers the composition).
import type {
  CombineArgs,
  ExpertBiasArgs,
  GeluBackwardArgs,
  GeluLayout,
  GemmGeluArgs,
  GemmRowsArgs,
  GemmSwigluArgs,
  GemmWgradArgs,
  GptOssConstants,
  MoeKernels,
  RouterGradTerms,
  RouterLayerBackwardArgs,
  RouterShape,
  SwigluBackwardArgs,
  SwigluLayout,
} from '../moe.js';
import { narrowToHalf, widenHalfToF32 } from '../../io/half.js';
import { widen } from '../half-precision.js';
import { BF16Array, type Storage, floatArrayLike } from '../types.js';
import { erf, sigmoid as stableSigmoid } from './math.js';

type Arr = Float32Array | Float64Array;
const f = (s: Storage): Arr => s as Arr;
/** A grouped GEMM's a / b / b2 operand as numbers: bf16 (BF16Array) operands widened exactly. */
const operand = (s: Storage): Arr => widen(s) as Arr;

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** op(B_e)[p, j] of a grouped GEMM's B operand. */
function bAt(b: Arr, off: number, trans: boolean, ld: number, e: number, stride: number, p: number, j: number): number {
  return b[off + e * stride + (trans ? j * ld + p : p * ld + j)]!;
}

function gemmRows({ a, aIdx, scale, b, b2, seg, c, n, k, accumulate }: GemmRowsArgs): void {
  const A = operand(a.data),
    B = operand(b.data),
    C = f(c.data);
  const B2 = b2 ? operand(b2.data) : null;
  const kSplit = b2 ? b2.kSplit : k;
  const [ao, bo, co, b2o] = [a.offset ?? 0, b.offset ?? 0, c.offset ?? 0, b2?.offset ?? 0];
  for (let e = 0; e + 1 < seg.length; e++) {
    for (let r = seg[e]!; r < seg[e + 1]!; r++) {
      const arow = ao + (aIdx ? aIdx[r]! : r) * a.ld;
      const s = scale ? f(scale)[r]! : 1;
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) {
          const bv =
            p < kSplit
              ? bAt(B, bo, b.trans, b.ld, e, b.expertStride, p, j)
              : bAt(B2!, b2o, b.trans, b.ld, e, b.expertStride, p - kSplit, j);
          acc += A[arow + p]! * bv;
        }
        const dst = co + r * c.ld + j;
        C[dst] = (accumulate ? C[dst]! : 0) + s * acc;
      }
    }
  }
}

function gemmWgrad({ a, aIdx, scale, b, bIdx, seg, c, m, n, accumulate }: GemmWgradArgs): void {
  // a bf16 c (not accumulating): the f32 sums, each rounded once
  if (c instanceof BF16Array) {
    if (accumulate) throw new RangeError('gemmWgrad: a bf16 c is written, not accumulated: accumulate must be false');
    const sums = new Float32Array(c.length);
    gemmWgrad({ a, aIdx, scale, b, bIdx, seg, c: sums, m, n, accumulate: false });
    narrowToHalf(sums, 'bf16', c);
    return;
  }
  const A = operand(a.data),
    B = operand(b.data),
    C = f(c);
  const [ao, bo] = [a.offset ?? 0, b.offset ?? 0];
  for (let e = 0; e + 1 < seg.length; e++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let r = seg[e]!; r < seg[e + 1]!; r++) {
          const s = scale ? f(scale)[r]! : 1;
          acc += s * A[ao + (aIdx ? aIdx[r]! : r) * a.ld + i]! * B[bo + (bIdx ? bIdx[r]! : r) * b.ld + j]!;
        }
        const dst = e * m * n + i * n + j;
        C[dst] = (accumulate ? C[dst]! : 0) + acc;
      }
    }
  }
}

function gemmSwiglu({ a, aIdx, gate, up, seg, gu, h, i, k }: GemmSwigluArgs): void {
  const A = f(a.data),
    G = f(gate.data),
    U = f(up.data),
    Hh = f(h);
  const GU = gu ? f(gu.data) : null;
  const [ao, go, uo] = [a.offset ?? 0, gate.offset ?? 0, up.offset ?? 0];
  const round = Hh instanceof Float32Array ? Math.fround : (x: number) => x;
  for (let e = 0; e + 1 < seg.length; e++) {
    for (let r = seg[e]!; r < seg[e + 1]!; r++) {
      const arow = ao + (aIdx ? aIdx[r]! : r) * a.ld;
      for (let j = 0; j < i; j++) {
        let g = 0,
          u = 0;
        for (let p = 0; p < k; p++) {
          g += A[arow + p]! * bAt(G, go, gate.trans, gate.ld, e, gate.expertStride, p, j);
          u += A[arow + p]! * bAt(U, uo, gate.trans, gate.ld, e, gate.expertStride, p, j);
        }
        // h from the pre-activations as stored (rounded to the dtype), as the two-pass form computes it
        g = round(g);
        u = round(u);
        if (GU) {
          GU[r * gu!.ld + j] = g;
          GU[r * gu!.ld + gu!.upOffset + j] = u;
        }
        Hh[r * i + j] = g * sigmoid(g) * u;
      }
    }
  }
}

function swigluForward({ gu, ld, gateOffset, upOffset, colStride, rows, i, h }: SwigluLayout & { h: Storage }): void {
  const GU = f(gu),
    Hh = f(h);
  for (let r = 0; r < rows; r++) {
    for (let q = 0; q < i; q++) {
      const g = GU[r * ld + gateOffset + q * colStride]!;
      Hh[r * i + q] = g * sigmoid(g) * GU[r * ld + upOffset + q * colStride]!;
    }
  }
}

function swigluBackward({ gu, ld, gateOffset, upOffset, colStride, rows, i, dy, rowScale, dgu, hOut, rowDot }: SwigluBackwardArgs): void {
  const GU = f(gu),
    DY = f(dy),
    DGU = f(dgu);
  for (let r = 0; r < rows; r++) {
    const w = rowScale ? f(rowScale)[r]! : 1;
    let dot = 0;
    for (let q = 0; q < i; q++) {
      const gi = r * ld + gateOffset + q * colStride;
      const ui = r * ld + upOffset + q * colStride;
      const g = GU[gi]!,
        u = GU[ui]!;
      const sg = sigmoid(g);
      const silu = g * sg;
      const dyv = DY[r * i + q]!;
      const dh = w * dyv;
      // read everything of this element before writing (dgu may be gu, hOut may be dy)
      DGU[gi] = dh * u * sg * (1 + g * (1 - sg));
      DGU[ui] = dh * silu;
      dot += dyv * silu * u;
      if (hOut) f(hOut)[r * i + q] = silu * u;
    }
    if (rowDot) f(rowDot)[r] = dot;
  }
}

const gelu = (x: number) => 0.5 * x * (1 + erf(x * Math.SQRT1_2));
/** gelu'(x) = Φ(x) + x·φ(x) */
const geluDerivative = (x: number) => 0.5 * (1 + erf(x * Math.SQRT1_2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);

function gemmGelu({ a, aIdx, b, seg, pre, h, i, k }: GemmGeluArgs): void {
  const A = f(a.data),
    B = f(b.data),
    Hh = f(h);
  const P = pre ? f(pre.data) : null;
  const [ao, bo] = [a.offset ?? 0, b.offset ?? 0];
  const round = Hh instanceof Float32Array ? Math.fround : (x: number) => x;
  for (let e = 0; e + 1 < seg.length; e++) {
    for (let r = seg[e]!; r < seg[e + 1]!; r++) {
      const arow = ao + (aIdx ? aIdx[r]! : r) * a.ld;
      for (let j = 0; j < i; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) acc += A[arow + p]! * bAt(B, bo, b.trans, b.ld, e, b.expertStride, p, j);
        acc = round(acc); // h from the pre-activation as stored, as the two-pass form computes it
        if (P) P[r * pre!.ld + j] = acc;
        Hh[r * i + j] = gelu(acc);
      }
    }
  }
}

function geluForward({ pre, ld, offset, colStride, rows, i, h }: GeluLayout & { h: Storage }): void {
  const P = f(pre),
    Hh = f(h);
  for (let r = 0; r < rows; r++) for (let q = 0; q < i; q++) Hh[r * i + q] = gelu(P[r * ld + offset + q * colStride]!);
}

function geluBackward({ pre, ld, offset, colStride, rows, i, dy, rowScale, dpre, hOut, rowDot }: GeluBackwardArgs): void {
  const P = f(pre),
    DY = f(dy),
    DP = f(dpre);
  for (let r = 0; r < rows; r++) {
    const w = rowScale ? f(rowScale)[r]! : 1;
    let dot = 0;
    for (let q = 0; q < i; q++) {
      const at = r * ld + offset + q * colStride;
      const x = P[at]!;
      const dyv = DY[r * i + q]!;
      // read everything of this element before writing (dpre may be pre, hOut may be dy)
      DP[at] = w * dyv * geluDerivative(x);
      dot += dyv * gelu(x);
      if (hOut) f(hOut)[r * i + q] = gelu(x);
    }
    if (rowDot) f(rowDot)[r] = dot;
  }
}

/** GPT-OSS's clamped pre-activations and h of one element. */
function gptOss(g0: number, u0: number, { limit, alpha }: GptOssConstants) {
  const g = Math.min(g0, limit);
  const u = Math.min(Math.max(u0, -limit), limit);
  const s = stableSigmoid(alpha * g);
  return { g, u, s, h: (u + 1) * g * s };
}

function gptOssForward(a: SwigluLayout & GptOssConstants & { h: Storage }): void {
  const { gu, ld, gateOffset, upOffset, colStride, rows, i } = a;
  const GU = f(gu),
    Hh = f(a.h);
  for (let r = 0; r < rows; r++) {
    for (let q = 0; q < i; q++)
      Hh[r * i + q] = gptOss(GU[r * ld + gateOffset + q * colStride]!, GU[r * ld + upOffset + q * colStride]!, a).h;
  }
}

function gptOssBackward(a: SwigluBackwardArgs & GptOssConstants): void {
  const { gu, ld, gateOffset, upOffset, colStride, rows, i, dy, rowScale, dgu, hOut, rowDot, limit, alpha } = a;
  const GU = f(gu),
    DY = f(dy),
    DGU = f(dgu);
  for (let r = 0; r < rows; r++) {
    const w = rowScale ? f(rowScale)[r]! : 1;
    let dot = 0;
    for (let q = 0; q < i; q++) {
      const gi = r * ld + gateOffset + q * colStride;
      const ui = r * ld + upOffset + q * colStride;
      const g0 = GU[gi]!,
        u0 = GU[ui]!;
      const { g, u, s, h } = gptOss(g0, u0, a);
      const dyv = DY[r * i + q]!;
      const dh = w * dyv;
      // d/dg [g·σ(αg)] = σ + α·g·σ(1-σ); a clamp passes the gradient where its input is inside its bounds
      DGU[gi] = g0 <= limit ? dh * (u + 1) * (s + alpha * g * s * (1 - s)) : 0;
      DGU[ui] = u0 >= -limit && u0 <= limit ? dh * g * s : 0;
      dot += dyv * h;
      if (hOut) f(hOut)[r * i + q] = h;
    }
    if (rowDot) f(rowDot)[r] = dot;
  }
}

function expertBias({ c, bias, seg, n }: ExpertBiasArgs): void {
  const C = f(c.data),
    B = f(bias.data);
  const bo = bias.offset ?? 0;
  for (let e = 0; e + 1 < seg.length; e++) {
    for (let r = seg[e]!; r < seg[e + 1]!; r++) {
      for (let q = 0; q < n; q++) C[r * c.ld + c.offset + q * c.colStride] += B[bo + e * bias.expertStride + q]!;
    }
  }
}

function combine({ y, slotRows, weights, numTokens, topK, h, out }: CombineArgs): void {
  const Y = f(y.data),
    O = f(out);
  const yo = y.offset ?? 0;
  for (let t = 0; t < numTokens; t++) {
    for (let j = 0; j < h; j++) {
      let acc = 0;
      for (let k = 0; k < topK; k++) {
        const row = slotRows[t * topK + k]!;
        if (row >= 0) acc += (weights ? f(weights)[t * topK + k]! : 1) * Y[yo + row * y.ld + j]!;
      }
      O[t * h + j] = acc;
    }
  }
}

function planRoutes({
  ids,
  numTokens: T,
  topK: K,
  numExperts: E,
  capacity,
  weights,
}: Parameters<MoeKernels['planRoutes']>[0]): ReturnType<MoeKernels['planRoutes']> {
  const n = T * K;
  const counts = new Int32Array(E);
  for (let s = 0; s < n; s++) {
    const e = ids[s]!;
    if (!(e >= 0 && e < E)) throw new RangeError(`moePlanRoutes: expert id ${e} at slot ${s} is outside [0, ${E})`);
    counts[e]!++;
  }
  const segOffsets = new Int32Array(E + 1);
  for (let e = 0; e < E; e++) segOffsets[e + 1] = segOffsets[e]! + (capacity === null ? counts[e]! : Math.min(counts[e]!, capacity));
  const S = segOffsets[E]!;
  const sortedSlots = new Int32Array(S);
  const rowTokens = new Int32Array(S);
  const rowWeights = floatArrayLike(f(weights), S);
  const slotRows = new Int32Array(n).fill(-1);
  const fill = segOffsets.slice(0, E);
  for (let s = 0; s < n; s++) {
    const e = ids[s]!;
    if (fill[e]! >= segOffsets[e + 1]!) continue;
    const row = fill[e]!++;
    sortedSlots[row] = s;
    rowTokens[row] = Math.floor(s / K);
    rowWeights[row] = f(weights)[s]!;
    slotRows[s] = row;
  }
  return { segOffsets, sortedSlots, rowTokens, slotRows, rowWeights, droppedSlots: n - S };
}

function routerForward(
  logits: Storage,
  { numTokens: T, numExperts: E, topK: K, renorm, scale }: RouterShape,
): ReturnType<MoeKernels['routerForward']> {
  const x = f(logits);
  const scores = floatArrayLike(x, T * E);
  const ids = new Int32Array(T * K);
  const weights = floatArrayLike(x, T * K);
  const lse = floatArrayLike(x, T);
  const counts = new Int32Array(E);
  const scoreSums = new Float64Array(E);
  let entropySum = 0;
  let lseSquaredSum = 0;
  for (let t = 0; t < T; t++) {
    let max = -Infinity;
    for (let e = 0; e < E; e++) max = Math.max(max, x[t * E + e]!);
    let z = 0;
    for (let e = 0; e < E; e++) z += Math.exp(x[t * E + e]! - max);
    for (let e = 0; e < E; e++) scores[t * E + e] = Math.exp(x[t * E + e]! - max) / z;
    // PyTorch: logsumexp is max itself when max is +-inf; z = lse² squared in the logits' dtype (inf in float32 for 1e30)
    const l = max === Infinity || max === -Infinity ? max : max + Math.log(z);
    lse[t] = l;
    lseSquaredSum += x instanceof Float32Array ? Math.fround(lse[t]! * lse[t]!) : lse[t]! * lse[t]!;
    let z1 = 0;
    for (let e = 0; e < E; e++) {
      scoreSums[e] += scores[t * E + e]!;
      z1 += scores[t * E + e]!;
    }
    for (let e = 0; e < E; e++) {
      const p = scores[t * E + e]! / z1; // the scores normalised again, as metrics.ts meanRowEntropy
      if (p > 0) entropySum -= p * Math.log(p);
    }
    // top-k: larger first, ties to the lower index, NaN largest
    const order = [...Array(E).keys()].sort((i, j) => {
      const a = scores[t * E + i]!,
        b = scores[t * E + j]!;
      if (Number.isNaN(a) !== Number.isNaN(b)) return Number.isNaN(a) ? -1 : 1;
      return a === b || (Number.isNaN(a) && Number.isNaN(b)) ? i - j : b - a;
    });
    let sum = 0;
    for (let k = 0; k < K; k++) sum += scores[t * E + order[k]!]!;
    for (let k = 0; k < K; k++) {
      const e = order[k]!;
      ids[t * K + k] = e;
      counts[e]!++;
      weights[t * K + k] = (renorm ? scores[t * E + e]! / (sum + 1e-20) : scores[t * E + e]!) * scale;
    }
  }
  return { scores, ids, weights, lse, counts, scoreSums, entropySum, lseSquaredSum };
}

/** dlogits of the terms (float64), dweights [T, K] or null. */
function routerDlogits(t: RouterGradTerms, dweights: (s: number) => number): Float64Array {
  const { numTokens: T, numExperts: E, topK: K, renorm, scale, lbCoef, zCoef } = t;
  const P = f(t.scores),
    L = f(t.lse);
  const d = new Float64Array(T * E);
  const dp = new Float64Array(E);
  for (let r = 0; r < T; r++) {
    dp.fill(0);
    let sum = 0,
      dot = 0;
    for (let k = 0; k < K; k++) {
      const p = P[r * E + t.ids[r * K + k]!]!;
      sum += p;
      dot += dweights(r * K + k) * p;
    }
    const den = renorm ? sum + 1e-20 : 1;
    for (let k = 0; k < K; k++) {
      // w_k = scale · p_k / den:  dL/dp_k = scale · (dw_k / den - [renorm] Σ_j dw_j p_j / den²)
      dp[t.ids[r * K + k]!] += scale * (dweights(r * K + k) / den - (renorm ? dot / (den * den) : 0));
    }
    if (lbCoef) for (let e = 0; e < E; e++) dp[e] += lbCoef[e]!;
    let inner = 0;
    for (let e = 0; e < E; e++) inner += dp[e]! * P[r * E + e]!;
    for (let e = 0; e < E; e++) {
      const p = P[r * E + e]!;
      d[r * E + e] = p * (dp[e]! - inner) + 2 * zCoef * L[r]! * p;
    }
  }
  return d;
}

function routerBackward(t: RouterGradTerms, dweights: Storage | null): Storage {
  const d = routerDlogits(t, dweights ? (s) => f(dweights)[s]! : () => 0);
  const out = floatArrayLike(f(t.scores), d.length);
  out.set(d);
  return out;
}

function routerLayerBackward(a: RouterLayerBackwardArgs): void {
  const { numTokens: T, numExperts: E, topK: K, hidden: H, slotRows } = a;
  const rowDw = a.rowDw ? f(a.rowDw) : null;
  const d = routerDlogits(a, (s) => (rowDw && slotRows[s]! >= 0 ? rowDw[slotRows[s]!]! : 0));
  if (a.x && a.dwr) {
    const X = f(a.x),
      DW = f(a.dwr);
    for (let e = 0; e < E; e++) {
      for (let j = 0; j < H; j++) {
        let acc = 0;
        for (let t = 0; t < T; t++) acc += d[t * E + e]! * X[t * H + j]!;
        DW[e * H + j] = acc;
      }
    }
  }
  if (a.wr && a.rowDx && a.dx) {
    const W = f(a.wr),
      RDX = f(a.rowDx),
      DX = f(a.dx);
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < H; j++) {
        let acc = 0;
        for (let k = 0; k < K; k++) if (slotRows[t * K + k]! >= 0) acc += RDX[slotRows[t * K + k]! * H + j]!;
        for (let e = 0; e < E; e++) acc += d[t * E + e]! * W[e * H + j]!;
        DX[t * H + j] = acc;
      }
    }
  }
}

/** src's rows (src.length / rowScale.length elements each) times their scale, each product rounded to f32. */
export function scaledRows(src: Float32Array, rowScale: Float32Array): Float32Array {
  const out = new Float32Array(src.length);
  const len = rowScale.length > 0 ? src.length / rowScale.length : 0;
  for (let r = 0; r < rowScale.length; r++) for (let q = r * len; q < (r + 1) * len; q++) out[q] = src[q]! * rowScale[r]!;
  return out;
}

export const referenceMoeKernels: MoeKernels = {
  fast: false,
  bf16: {
    widen: (src, out) => widenHalfToF32(src, 'bf16', out),
    narrow: (src, out) => narrowToHalf(src, 'bf16', out),
    narrowScaledRows: (src, s, out) => narrowToHalf(scaledRows(src, s), 'bf16', out),
  },
  gemmRows,
  gemmWgrad,
  gemmSwiglu,
  swigluForward,
  swigluBackward,
  combine,
  planRoutes,
  routerForward,
  routerBackward,
  routerLayerBackward,
  gemmGelu,
  geluForward,
  geluBackward,
  gptOssForward,
  gptOssBackward,
  expertBias,
  batched: (fn) => fn(),
  rowBlocks: (fn) => fn(),
  blockLocal: () => {},
};
