// Scaled-dot-product attention composed from the tiled matmul and two row kernels:
// S = q kᵀ; P = softmax(scale * S, causal mask) with lse; out = P v. The backward recomputes
// P from S and lse, then dP = dout vᵀ, dS = P (dP - rowsum(dout * out)) scale,
// dq = dS k, dk = dSᵀ q, dv = Pᵀ dout. Causal: query i sees keys j <= i + tk - tq.
import type { GpuRuntime, GpuStorage } from '../runtime.js';
import { matmul } from './linalg.js';
import { WG, buffers, perRow } from './wgsl.js';

const EACH = `for (var j = t; j < tk; j = j + ${WG}u)`;
/** Params: rows (bh * tq), tq, tk, causal (then d in the backward); the scale as a float after them. */
const VISIBLE = `fn visible(row: u32, j: u32) -> bool { let i = row % pu(1u); return pu(3u) == 0u || j + pu(1u) <= i + pu(2u); }`;

/** P and lse from the raw scores S [bh, tq, tk]. */
function probabilities(
  rt: GpuRuntime,
  s: GpuStorage,
  rows: number,
  tq: number,
  tk: number,
  scale: number,
  causal: boolean,
): { p: GpuStorage; lse: GpuStorage } {
  const p = rt.alloc('f32', rows * tk);
  const lse = rt.alloc('f32', rows);
  const code = perRow(
    buffers([
      ['S', 'f32', false],
      ['Pr', 'f32', true],
      ['L', 'f32', true],
    ]),
    `let tk = pu(2u); let o = row * tk; let scale = pf(4u);
  var m = -inf();
  ${EACH} { if (visible(row, j)) { m = max(m, S[o + j] * scale); } }
  m = wmax(t, m, 0u);
  var z = 0.0;
  ${EACH} { if (visible(row, j)) { z = z + exp(S[o + j] * scale - m); } }
  z = wsum(t, z, 1u);
  let lse = select(m + log(z), -inf(), m == -inf());
  if (t == 0u) { L[row] = lse; }
  ${EACH} { Pr[o + j] = select(0.0, exp(S[o + j] * scale - lse), visible(row, j)); }`,
    VISIBLE,
  );
  rt.run(`attention softmax ([${rows}, ${tk}])`, code, [s, p, lse], [rows, tq, tk, causal ? 1 : 0], [scale], rows);
  return { p, lse };
}

export function attention(
  rt: GpuRuntime,
  q: GpuStorage,
  k: GpuStorage,
  v: GpuStorage,
  bh: number,
  tq: number,
  tk: number,
  d: number,
  scale: number,
  causal: boolean,
): { out: GpuStorage; lse: GpuStorage } {
  const s = matmul(rt, q, k, bh, tq, d, tk, false, true, tq * d, tk * d);
  const { p, lse } = probabilities(rt, s, bh * tq, tq, tk, scale, causal);
  return { out: matmul(rt, p, v, bh, tq, tk, d, false, false, tq * tk, tk * d), lse };
}

export function attentionBackward(
  rt: GpuRuntime,
  q: GpuStorage,
  k: GpuStorage,
  v: GpuStorage,
  out: GpuStorage,
  lse: GpuStorage,
  dout: GpuStorage,
  bh: number,
  tq: number,
  tk: number,
  d: number,
  scale: number,
  causal: boolean,
): { dq: GpuStorage; dk: GpuStorage; dv: GpuStorage } {
  const rows = bh * tq;
  const s = matmul(rt, q, k, bh, tq, d, tk, false, true, tq * d, tk * d);
  const dp = matmul(rt, dout, v, bh, tq, d, tk, false, true, tq * d, tk * d);
  const p = rt.alloc('f32', rows * tk);
  const ds = rt.alloc('f32', rows * tk);
  const code = perRow(
    buffers([
      ['S', 'f32', false],
      ['L', 'f32', false],
      ['dP', 'f32', false],
      ['O', 'f32', false],
      ['dO', 'f32', false],
      ['Pr', 'f32', true],
      ['dS', 'f32', true],
    ]),
    `let tk = pu(2u); let d = pu(4u); let o = row * tk; let scale = pf(5u);
  var di = 0.0;
  for (var c = t; c < d; c = c + ${WG}u) { di = di + dO[row * d + c] * O[row * d + c]; }
  di = wsum(t, di, 0u);
  let lse = L[row];
  ${EACH} {
    let pj = select(0.0, exp(S[o + j] * scale - lse), visible(row, j));
    Pr[o + j] = pj;
    dS[o + j] = pj * (dP[o + j] - di) * scale;
  }`,
    VISIBLE,
  );
  rt.run(
    `attentionBackward softmax ([${bh}, ${tq}, ${tk}], d = ${d})`,
    code,
    [s, lse, dp, out, dout, p, ds],
    [rows, tq, tk, causal ? 1 : 0, d],
    [scale],
    rows,
  );
  return {
    dq: matmul(rt, ds, k, bh, tq, tk, d, false, false, tq * tk, tk * d),
    dk: matmul(rt, ds, q, bh, tk, tq, d, true, false, tq * tk, tq * d),
    dv: matmul(rt, p, dout, bh, tk, tq, d, true, false, tq * tk, tq * d),
  };
}
