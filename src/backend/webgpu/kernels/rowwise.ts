// Row-wise fused kernels over [rows, n]: softmax / log-softmax, LayerNorm, RMSNorm, forward
// and backward. One workgroup per row; the weight / bias gradients sum over rows in a second
// kernel with one invocation per column.
import type { GpuRuntime, GpuStorage } from '../runtime.js';
import { WG, buffers, perElement, perRow } from './wgsl.js';

interface NormResult {
  y: GpuStorage;
  mean: GpuStorage;
  rstd: GpuStorage;
}
interface NormGrads {
  dx: GpuStorage;
  dw: GpuStorage | null;
  db: GpuStorage | null;
}

const cols = (n: number) => Math.ceil(n / WG);
/** `for j in this invocation's share of the row`. */
const EACH = `for (var j = t; j < n; j = j + ${WG}u)`;

export function softmax(rt: GpuRuntime, x: GpuStorage, rows: number, n: number, log: boolean): GpuStorage {
  const y = rt.alloc('f32', rows * n);
  const code = perRow(
    buffers([
      ['x', 'f32', false],
      ['y', 'f32', true],
    ]),
    `let n = pu(1u); let o = row * n;
  var m = -inf();
  ${EACH} { m = max(m, x[o + j]); }
  m = wmax(t, m, 0u);
  var s = 0.0;
  ${EACH} { s = s + exp(x[o + j] - m); }
  let lse = m + log(wsum(t, s, 1u));
  ${EACH} { y[o + j] = ${log ? 'x[o + j] - lse' : 'exp(x[o + j] - lse)'}; }`,
  );
  rt.run(`softmax${log ? ' (log)' : ''} ([${rows}, ${n}])`, code, [x, y], [rows, n], [], rows);
  return y;
}

export function softmaxBackward(rt: GpuRuntime, y: GpuStorage, dy: GpuStorage, rows: number, n: number, log: boolean): GpuStorage {
  const dx = rt.alloc('f32', rows * n);
  const body = log
    ? `var s = 0.0;
  ${EACH} { s = s + dy[o + j]; }
  s = wsum(t, s, 0u);
  ${EACH} { dx[o + j] = dy[o + j] - exp(y[o + j]) * s; }`
    : `var s = 0.0;
  ${EACH} { s = s + y[o + j] * dy[o + j]; }
  s = wsum(t, s, 0u);
  ${EACH} { dx[o + j] = y[o + j] * (dy[o + j] - s); }`;
  const code = perRow(
    buffers([
      ['y', 'f32', false],
      ['dy', 'f32', false],
      ['dx', 'f32', true],
    ]),
    `let n = pu(1u); let o = row * n;\n  ${body}`,
  );
  rt.run(`softmaxBackward${log ? ' (log)' : ''} ([${rows}, ${n}])`, code, [y, dy, dx], [rows, n], [], rows);
  return dx;
}

/** Params of the norm kernels: rows, n, has weight, has bias; eps as float. */
export function layerNorm(
  rt: GpuRuntime,
  x: GpuStorage,
  w: GpuStorage | null,
  b: GpuStorage | null,
  rows: number,
  n: number,
  eps: number,
): NormResult {
  const y = rt.alloc('f32', rows * n);
  const mean = rt.alloc('f32', rows);
  const rstd = rt.alloc('f32', rows);
  const code = perRow(
    buffers([
      ['x', 'f32', false],
      ['w', 'f32', false],
      ['b', 'f32', false],
      ['y', 'f32', true],
      ['mean', 'f32', true],
      ['rstd', 'f32', true],
    ]),
    `let n = pu(1u); let o = row * n;
  var s = 0.0;
  ${EACH} { s = s + x[o + j]; }
  let mu = wsum(t, s, 0u) / f32(n);
  var v = 0.0;
  ${EACH} { let d = x[o + j] - mu; v = v + d * d; }
  let rs = 1.0 / sqrt(wsum(t, v, 1u) / f32(n) + pf(4u));
  if (t == 0u) { mean[row] = mu; rstd[row] = rs; }
  ${EACH} {
    var r = (x[o + j] - mu) * rs;
    if (pu(2u) == 1u) { r = r * w[j]; }
    if (pu(3u) == 1u) { r = r + b[j]; }
    y[o + j] = r;
  }`,
  );
  rt.run(`layerNorm ([${rows}, ${n}])`, code, [x, w, b, y, mean, rstd], [rows, n, w ? 1 : 0, b ? 1 : 0], [eps], rows);
  return { y, mean, rstd };
}

export function layerNormBackward(
  rt: GpuRuntime,
  dy: GpuStorage,
  x: GpuStorage,
  w: GpuStorage | null,
  mean: GpuStorage,
  rstd: GpuStorage,
  rows: number,
  n: number,
  withBias: boolean,
): NormGrads {
  const dx = rt.alloc('f32', rows * n);
  const decls = buffers([
    ['dy', 'f32', false],
    ['x', 'f32', false],
    ['w', 'f32', false],
    ['mean', 'f32', false],
    ['rstd', 'f32', false],
    ['dx', 'f32', true],
  ]);
  const code = perRow(
    decls,
    `let n = pu(1u); let o = row * n; let mu = mean[row]; let rs = rstd[row];
  var sg = 0.0;
  var sgx = 0.0;
  ${EACH} {
    let g = dy[o + j] * select(1.0, w[j], pu(2u) == 1u);
    sg = sg + g;
    sgx = sgx + g * (x[o + j] - mu) * rs;
  }
  sg = wsum(t, sg, 0u) / f32(n);
  sgx = wsum(t, sgx, 1u) / f32(n);
  ${EACH} {
    let g = dy[o + j] * select(1.0, w[j], pu(2u) == 1u);
    dx[o + j] = rs * (g - sg - (x[o + j] - mu) * rs * sgx);
  }`,
  );
  const shape = `([${rows}, ${n}])`;
  rt.run(`layerNormBackward ${shape}`, code, [dy, x, w, mean, rstd, dx], [rows, n, w ? 1 : 0], [], rows);
  const dw = w ? columnSum(rt, `layerNormBackward dw ${shape}`, 'dy[o] * (x[o] - mean[r]) * rstd[r]', dy, x, mean, rstd, rows, n) : null;
  const db = withBias ? columnSum(rt, `layerNormBackward db ${shape}`, 'dy[o]', dy, x, mean, rstd, rows, n) : null;
  return { dx, dw, db };
}

/** out[j] = sum over rows r of `term` (o = r * n + j), one invocation per column. */
function columnSum(
  rt: GpuRuntime,
  op: string,
  term: string,
  dy: GpuStorage,
  x: GpuStorage,
  mean: GpuStorage | null,
  rstd: GpuStorage,
  rows: number,
  n: number,
): GpuStorage {
  const out = rt.alloc('f32', n);
  const code = perElement(
    buffers([
      ['dy', 'f32', false],
      ['x', 'f32', false],
      ['mean', 'f32', false],
      ['rstd', 'f32', false],
      ['out', 'f32', true],
    ]),
    `let j = i; let n = pu(0u);
  var acc = 0.0;
  for (var r = 0u; r < pu(1u); r = r + 1u) { let o = r * n + j; acc = acc + ${term}; }
  out[j] = acc;`,
  );
  rt.run(op, code, [dy, x, mean, rstd, out], [n, rows], [], cols(n));
  return out;
}

export function rmsNorm(rt: GpuRuntime, x: GpuStorage, w: GpuStorage | null, rows: number, n: number, eps: number): NormResult {
  const y = rt.alloc('f32', rows * n);
  const rstd = rt.alloc('f32', rows);
  const code = perRow(
    buffers([
      ['x', 'f32', false],
      ['w', 'f32', false],
      ['y', 'f32', true],
      ['rstd', 'f32', true],
    ]),
    `let n = pu(1u); let o = row * n;
  var s = 0.0;
  ${EACH} { s = s + x[o + j] * x[o + j]; }
  let rs = 1.0 / sqrt(wsum(t, s, 0u) / f32(n) + pf(3u));
  if (t == 0u) { rstd[row] = rs; }
  ${EACH} { y[o + j] = x[o + j] * rs * select(1.0, w[j], pu(2u) == 1u); }`,
  );
  rt.run(`rmsNorm ([${rows}, ${n}])`, code, [x, w, y, rstd], [rows, n, w ? 1 : 0], [eps], rows);
  return { y, mean: rt.alloc('f32', 0), rstd };
}

export function rmsNormBackward(
  rt: GpuRuntime,
  dy: GpuStorage,
  x: GpuStorage,
  w: GpuStorage | null,
  rstd: GpuStorage,
  rows: number,
  n: number,
): NormGrads {
  const dx = rt.alloc('f32', rows * n);
  const code = perRow(
    buffers([
      ['dy', 'f32', false],
      ['x', 'f32', false],
      ['w', 'f32', false],
      ['rstd', 'f32', false],
      ['dx', 'f32', true],
    ]),
    `let n = pu(1u); let o = row * n; let rs = rstd[row];
  var s = 0.0;
  ${EACH} { s = s + dy[o + j] * select(1.0, w[j], pu(2u) == 1u) * x[o + j]; }
  let sgx = wsum(t, s, 0u) / f32(n);
  ${EACH} { dx[o + j] = rs * dy[o + j] * select(1.0, w[j], pu(2u) == 1u) - x[o + j] * rs * rs * rs * sgx; }`,
  );
  const shape = `([${rows}, ${n}])`;
  rt.run(`rmsNormBackward ${shape}`, code, [dy, x, w, rstd, dx], [rows, n, w ? 1 : 0], [], rows);
  const dw = w ? columnSum(rt, `rmsNormBackward dw ${shape}`, 'dy[o] * x[o] * rstd[r]', dy, x, null, rstd, rows, n) : null;
  return { dx, dw, db: null };
}
