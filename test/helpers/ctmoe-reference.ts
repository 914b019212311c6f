// The CT-MoE seed's block (pingBenM/CT-MoE; spec/seed-systems.md section 2) in plain float64
// loops, written from the spec and reusing nothing of moekit's: S, the routing bias (column
// sums), top-k without renormalisation, message passing over the k selected experts, the LB
// loss. The test-side reference the core MoELayer(ctMoePreset(...)) is held to.
function erf(x: number): number {
  // Taylor series; |x| stays small here (< 4), where it is accurate to ~1e-13
  let term = x;
  let s = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    s += add;
    if (Math.abs(add) < 1e-17 * Math.abs(s)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * s;
}
const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

export function refS(raw: ArrayLike<number>, N: number, temp: number): Float64Array {
  const s = new Float64Array(N * N);
  for (let i = 0; i < N; i++) {
    const row: number[] = [];
    for (let j = 0; j < N; j++) row.push(i === j ? -Infinity : (raw[i * N + j]! + raw[j * N + i]!) / 2 / temp);
    const m = Math.max(...row);
    const ex = row.map((v) => Math.exp(v - m));
    const z = ex.reduce((a, b) => a + b, 0);
    for (let j = 0; j < N; j++) s[i * N + j] = ex[j]! / z;
  }
  return s;
}

export interface RefParams {
  T: number;
  D: number;
  N: number;
  K: number;
  x: Float64Array;
  wr: Float64Array;
  w1: Float64Array;
  w2: Float64Array;
  sRaw: Float64Array | null;
  routingScale: number;
  collabScale: number;
  temp: number;
  routing: boolean;
  collab: boolean;
}

/** The whole layer in float64 loops: y [T, D], lb, ids, S_sub per token. */
export function refLayer(p: RefParams) {
  const { T, D, N, K, x } = p;
  const S = p.sRaw ? refS(p.sRaw, N, p.temp) : null;
  const col = new Float64Array(N);
  if (S) for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) col[j]! += S[i * N + j]!;
  const y = new Float64Array(T * D);
  const pMean = new Float64Array(N);
  const f = new Float64Array(N);
  const ids: number[][] = [];
  const logitsAll = new Float64Array(T * N);
  const subs: number[][][] = [];
  for (let t = 0; t < T; t++) {
    const logits = new Float64Array(N);
    for (let e = 0; e < N; e++) {
      let v = 0;
      for (let d = 0; d < D; d++) v += x[t * D + d]! * p.wr[e * D + d]!;
      if (S && p.routing) v += p.routingScale * col[e]!;
      logits[e] = v;
      logitsAll[t * N + e] = v;
    }
    const m = Math.max(...logits);
    const ex = [...logits].map((v) => Math.exp(v - m));
    const z = ex.reduce((a, b) => a + b, 0);
    const w = ex.map((v) => v / z);
    for (let e = 0; e < N; e++) pMean[e]! += w[e]! / T;
    const order = [...Array(N).keys()].sort((a, b) => w[b]! - w[a]! || a - b).slice(0, K);
    ids.push(order);
    for (const e of order) f[e]! += 1 / T;
    // expert outputs
    const out = order.map((e) => {
      const h = new Float64Array(D);
      for (let j = 0; j < D; j++) {
        let v = 0;
        for (let i = 0; i < D; i++) v += x[t * D + i]! * p.w1[e * D * D + i * D + j]!;
        h[j] = gelu(v);
      }
      const o = new Float64Array(D);
      for (let j = 0; j < D; j++) {
        let v = 0;
        for (let i = 0; i < D; i++) v += h[i]! * p.w2[e * D * D + i * D + j]!;
        o[j] = v;
      }
      return o;
    });
    let mixed = out;
    if (S && p.collab) {
      const sub = order.map((a) => order.map((b) => S[a * N + b]!));
      const norm = sub.map((row) => {
        const rs = row.reduce((u, v) => u + v, 0);
        return row.map((v) => v / (rs + 1e-9));
      });
      subs.push(norm);
      mixed = out.map((o, i) =>
        Float64Array.from(o, (v, d) => v + p.collabScale * norm[i]!.reduce((acc, sij, j) => acc + sij * out[j]![d]!, 0)),
      );
    }
    for (let k = 0; k < K; k++) for (let d = 0; d < D; d++) y[t * D + d]! += w[order[k]!]! * mixed[k]![d]!;
  }
  let lb = 0;
  for (let e = 0; e < N; e++) lb += f[e]! * pMean[e]!;
  return { y, lb: N * lb, ids, subs, S, logits: logitsAll };
}
