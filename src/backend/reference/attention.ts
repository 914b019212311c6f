// Reference scaled-dot-product attention for q [bh, tq, d], k/v [bh, tk, d].
// Causal masking aligns the last query with the last key (query i sees keys j <= i + tk - tq).
import { type Storage, floatArrayLike as floatLike } from '../types.js';

function visible(i: number, j: number, tq: number, tk: number, causal: boolean): boolean {
  return !causal || j <= i + tk - tq;
}

export function attention(
  q: Storage,
  k: Storage,
  v: Storage,
  bh: number,
  tq: number,
  tk: number,
  d: number,
  scale: number,
  causal: boolean,
): { out: Storage; lse: Storage } {
  const out = floatLike(q, bh * tq * d);
  const lse = floatLike(q, bh * tq);
  const s = new Float64Array(tk);
  for (let b = 0; b < bh; b++) {
    for (let i = 0; i < tq; i++) {
      const qo = (b * tq + i) * d;
      let m = -Infinity;
      for (let j = 0; j < tk; j++) {
        if (!visible(i, j, tq, tk, causal)) {
          s[j] = -Infinity;
          continue;
        }
        let dot = 0;
        const ko = (b * tk + j) * d;
        for (let c = 0; c < d; c++) dot += q[qo + c]! * k[ko + c]!;
        s[j] = dot * scale;
        m = Math.max(m, s[j]!);
      }
      let z = 0;
      for (let j = 0; j < tk; j++) z += s[j] === -Infinity ? 0 : Math.exp(s[j]! - m);
      const l = m + Math.log(z);
      lse[b * tq + i] = l;
      for (let c = 0; c < d; c++) {
        let acc = 0;
        for (let j = 0; j < tk; j++) if (s[j] !== -Infinity) acc += Math.exp(s[j]! - l) * v[(b * tk + j) * d + c]!;
        out[qo + c] = acc;
      }
    }
  }
  return { out, lse };
}

export function attentionBackward(
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
): { dq: Storage; dk: Storage; dv: Storage } {
  const dq = floatLike(q, q.length);
  const dk = floatLike(k, k.length);
  const dv = floatLike(v, v.length);
  for (let b = 0; b < bh; b++) {
    for (let i = 0; i < tq; i++) {
      const qo = (b * tq + i) * d;
      // D_i = sum_c dout_ic * out_ic
      let di = 0;
      for (let c = 0; c < d; c++) di += dout[qo + c]! * out[qo + c]!;
      for (let j = 0; j < tk; j++) {
        if (!visible(i, j, tq, tk, causal)) continue;
        const ko = (b * tk + j) * d;
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[qo + c]! * k[ko + c]!;
        const p = Math.exp(dot * scale - lse[b * tq + i]!);
        let dp = 0;
        for (let c = 0; c < d; c++) dp += dout[qo + c]! * v[ko + c]!;
        const ds = p * (dp - di) * scale;
        for (let c = 0; c < d; c++) {
          dv[ko + c]! += p * dout[qo + c]!;
          dq[qo + c]! += ds * k[ko + c]!;
          dk[ko + c]! += ds * q[qo + c]!;
        }
      }
    }
  }
  return { dq, dk, dv };
}
