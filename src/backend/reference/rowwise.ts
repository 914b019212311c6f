// Reference row-wise fused ops over [rows, n]: softmax / log-softmax, LayerNorm, RMSNorm.
import type { NormGrads, NormResult } from '../backend.js';
import { type Storage, floatArrayLike as floatLike } from '../types.js';

export function softmax(x: Storage, rows: number, n: number, log: boolean): Storage {
  const out = floatLike(x, rows * n);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, x[o + j]!);
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(x[o + j]! - m);
    const lse = m + Math.log(s);
    for (let j = 0; j < n; j++) out[o + j] = log ? x[o + j]! - lse : Math.exp(x[o + j]! - lse);
  }
  return out;
}

export function softmaxBackward(y: Storage, dy: Storage, rows: number, n: number, log: boolean): Storage {
  const out = floatLike(y, rows * n);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    if (log) {
      // dx = dy - softmax * sum(dy)
      let s = 0;
      for (let j = 0; j < n; j++) s += dy[o + j]!;
      for (let j = 0; j < n; j++) out[o + j] = dy[o + j]! - Math.exp(y[o + j]!) * s;
    } else {
      // dx = y * (dy - sum(y * dy))
      let s = 0;
      for (let j = 0; j < n; j++) s += y[o + j]! * dy[o + j]!;
      for (let j = 0; j < n; j++) out[o + j] = y[o + j]! * (dy[o + j]! - s);
    }
  }
  return out;
}

export function layerNorm(x: Storage, weight: Storage | null, bias: Storage | null, rows: number, n: number, eps: number): NormResult {
  const y = floatLike(x, rows * n);
  const mean = floatLike(x, rows);
  const rstd = floatLike(x, rows);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let mu = 0;
    for (let j = 0; j < n; j++) mu += x[o + j]!;
    mu /= n;
    let v = 0;
    for (let j = 0; j < n; j++) v += (x[o + j]! - mu) ** 2;
    v /= n; // biased variance, as PyTorch's layer_norm
    const rs = 1 / Math.sqrt(v + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < n; j++) {
      const xh = (x[o + j]! - mu) * rs;
      y[o + j] = xh * (weight ? weight[j]! : 1) + (bias ? bias[j]! : 0);
    }
  }
  return { y, mean, rstd };
}

export function layerNormBackward(
  dy: Storage,
  x: Storage,
  weight: Storage | null,
  mean: Storage,
  rstd: Storage,
  rows: number,
  n: number,
  withBias: boolean,
): NormGrads {
  const dx = floatLike(x, rows * n);
  const dw = weight ? floatLike(x, n) : null;
  const db = withBias ? floatLike(x, n) : null;
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    const mu = mean[r]!;
    const rs = rstd[r]!;
    // g = dy * w; dx = rs * (g - mean(g) - xhat * mean(g * xhat))
    let sg = 0;
    let sgx = 0;
    for (let j = 0; j < n; j++) {
      const xh = (x[o + j]! - mu) * rs;
      const g = dy[o + j]! * (weight ? weight[j]! : 1);
      sg += g;
      sgx += g * xh;
      if (dw) dw[j]! += dy[o + j]! * xh;
      if (db) db[j]! += dy[o + j]!;
    }
    sg /= n;
    sgx /= n;
    for (let j = 0; j < n; j++) {
      const xh = (x[o + j]! - mu) * rs;
      const g = dy[o + j]! * (weight ? weight[j]! : 1);
      dx[o + j] = rs * (g - sg - xh * sgx);
    }
  }
  return { dx, dw, db };
}

export function rmsNorm(x: Storage, weight: Storage | null, rows: number, n: number, eps: number): NormResult {
  const y = floatLike(x, rows * n);
  const rstd = floatLike(x, rows);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let ms = 0;
    for (let j = 0; j < n; j++) ms += x[o + j]! * x[o + j]!;
    const rs = 1 / Math.sqrt(ms / n + eps);
    rstd[r] = rs;
    for (let j = 0; j < n; j++) y[o + j] = x[o + j]! * rs * (weight ? weight[j]! : 1);
  }
  return { y, mean: floatLike(x, 0), rstd };
}

export function rmsNormBackward(dy: Storage, x: Storage, weight: Storage | null, rstd: Storage, rows: number, n: number): NormGrads {
  const dx = floatLike(x, rows * n);
  const dw = weight ? floatLike(x, n) : null;
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    const rs = rstd[r]!;
    // y = x * rs * w; dx = rs * g - x * rs^3 * mean(g * x), g = dy * w
    let sgx = 0;
    for (let j = 0; j < n; j++) {
      const g = dy[o + j]! * (weight ? weight[j]! : 1);
      sgx += g * x[o + j]!;
      if (dw) dw[j]! += dy[o + j]! * x[o + j]! * rs;
    }
    sgx /= n;
    for (let j = 0; j < n; j++) {
      const g = dy[o + j]! * (weight ? weight[j]! : 1);
      dx[o + j] = rs * g - x[o + j]! * rs * rs * rs * sgx;
    }
  }
  return { dx, dw, db: null };
}
