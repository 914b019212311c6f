// Independent step-by-step MoE references in plain JS over Float64Array, written from the
// spec (spec/hf-moe.md, spec/seed-systems.md). They never call moekit's MoE code.

export type Mat = Float64Array[];

export function rows(data: ArrayLike<number>, r: number, c: number): Mat {
  return Array.from({ length: r }, (_, i) => Float64Array.from({ length: c }, (_, j) => data[i * c + j]!));
}

/** Indices of the k largest values, ties to the lowest index (what torch.topk does on CPU). */
export function topkIdx(v: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: v.length }, (_, i) => i);
  idx.sort((i, j) => {
    const a = v[i]!;
    const b = v[j]!;
    if (a === b) return i - j;
    return a > b ? -1 : 1;
  });
  return idx.slice(0, k);
}

export function softmaxRow(v: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < v.length; i++) m = Math.max(m, v[i]!);
  const e = Float64Array.from(v, (x) => Math.exp(x - m));
  const s = e.reduce((p, x) => p + x, 0);
  return e.map((x) => x / s);
}

export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

export interface RefRouter {
  E: number;
  K: number;
  score: 'softmax' | 'sigmoid';
  selectOn?: 'scores' | 'logits';
  renorm?: 'none' | 'sum' | 'pnorm';
  p?: number;
  scale?: number;
  uniform?: boolean;
  bias?: number[];
  group?: { G: number; keep: number; score: 'top2-sum' | 'max'; mask: 'zero' | 'neg-inf' };
}

/** Router on one logits matrix: ids and weights per token. */
export function refRoute(logits: Mat, c: RefRouter): { ids: number[][]; w: number[][]; scores: Mat } {
  const ids: number[][] = [];
  const w: number[][] = [];
  const scores: Mat = [];
  logits.forEach((row, t) => {
    const s = c.score === 'softmax' ? softmaxRow(row) : row.map(sigmoid);
    scores.push(s);
    let chosen: number[];
    if (c.uniform) chosen = Array.from({ length: c.K }, (_, k) => (t * c.K + k) % c.E);
    else if (c.selectOn === 'logits') chosen = topkIdx(row, c.K);
    else {
      const sel = Float64Array.from(s, (x, e) => x + (c.bias ? c.bias[e]! : 0));
      if (c.group) {
        const n = c.E / c.group.G;
        const gs: number[] = [];
        for (let g = 0; g < c.group.G; g++) {
          const vals = Array.from(sel.slice(g * n, (g + 1) * n)).sort((a, b) => b - a);
          gs.push(c.group.score === 'max' ? vals[0]! : vals.slice(0, Math.min(2, n)).reduce((p, x) => p + x, 0));
        }
        const kept = new Set(topkIdx(gs, c.group.keep));
        for (let e = 0; e < c.E; e++) if (!kept.has(Math.floor(e / n))) sel[e] = c.group.mask === 'zero' ? 0 : -Infinity;
      }
      chosen = topkIdx(sel, c.K);
    }
    let ww: number[];
    if (c.selectOn === 'logits') {
      const picked = chosen.map((e) => row[e]!);
      ww = c.score === 'softmax' ? Array.from(softmaxRow(picked)) : picked.map(sigmoid);
    } else ww = chosen.map((e) => s[e]!);
    if (c.renorm === 'sum') {
      const z = ww.reduce((p, x) => p + x, 0) + 1e-20;
      ww = ww.map((x) => x / z);
    } else if (c.renorm === 'pnorm') {
      const p = c.p ?? 1;
      const z = ww.reduce((a, x) => a + Math.abs(x) ** p, 0) ** (1 / p);
      ww = ww.map((x) => x / z);
    }
    const sc = c.scale ?? 1;
    ids.push(chosen);
    w.push(ww.map((x) => x * sc));
  });
  return { ids, w, scores };
}

export const gelu = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const silu = (x: number): number => x * sigmoid(x);

/** Abramowitz-Stegun 7.1.26 is too coarse for f64 checks; use a series / continued fraction. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    // Maclaurin series: erf x = 2/sqrt(pi) Σ (-1)^n x^(2n+1) / (n! (2n+1))
    let sum = 0;
    let term = ax;
    for (let n = 0; n < 200; n++) {
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
      term *= (-ax * ax) / (n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // continued fraction for erfc
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return Math.sign(x) * (1 - erfc);
}

/** Central-difference gradient of a scalar function of `data` (perturbed in place, restored). */
export function numericGrad(f: () => number, data: Float64Array, eps = 1e-6): Float64Array {
  const g = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    data[i] = v + eps;
    const up = f();
    data[i] = v - eps;
    const down = f();
    data[i] = v;
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}

/**
 * Expert-choice routing (Zhou et al. 2022) from the paper: S = softmax(logits) per token,
 * each expert takes its top-c tokens by S[:, e] (ties: lowest token), c = min(T, max(1, round(cf·T·k/E))).
 */
export function refExpertChoice(
  logits: Mat,
  E: number,
  k: number,
  cf = 1,
): { c: number; chosen: number[][]; perToken: number[]; w: Mat; scores: Mat } {
  const T = logits.length;
  const c = T === 0 ? 0 : Math.min(T, Math.max(1, Math.round((cf * T * k) / E)));
  const scores = logits.map((l) => softmaxRow(l));
  const chosen: number[][] = [];
  const w: Mat = scores.map(() => new Float64Array(E));
  const perToken = new Array<number>(T).fill(0);
  for (let e = 0; e < E; e++) {
    const col = scores.map((s) => s[e]!);
    const toks = topkIdx(col, c);
    chosen.push(toks);
    for (const t of toks) {
      w[t]![e] = scores[t]![e]!;
      perToken[t]!++;
    }
  }
  return { c, chosen, perToken, w, scores };
}
