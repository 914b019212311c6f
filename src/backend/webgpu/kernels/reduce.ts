// Reductions, arg-reductions and scans along the middle axis of [outer, n, inner]: one
// workgroup per output (outer * inner of them) reducing its n values in shared memory.
import type { ReduceOp } from '../../backend.js';
import type { GpuRuntime, GpuStorage } from '../runtime.js';
import { WG, buffers, perElement, perRow } from './wgsl.js';

/** Element j of output `row` = o * inner + i: x[(o * n + j) * inner + i]. */
const AT = `fn at(row: u32, j: u32) -> u32 { let n = pu(1u); let inner = pu(2u); return ((row / inner) * n + j) * inner + row % inner; }`;

export function reduce(rt: GpuRuntime, op: ReduceOp, x: GpuStorage, outer: number, n: number, inner: number): GpuStorage {
  const out = rt.alloc(x.dtype, outer * inner);
  const strided = (init: string, step: string) => `var acc = ${init};
  for (var j = t; j < n; j = j + ${WG}u) { let v = f32(x[at(row, j)]); ${step} }`;
  // max / min propagate NaN as the reference does
  const body: Record<ReduceOp, string> = {
    sum: `${strided('0.0', 'acc = acc + v;')}
  let r = wsum(t, acc, 0u);`,
    max: `${strided('-inf()', 'if (v > acc || is_nan(v)) { acc = v; }')}
  let hasNan = wmax(t, select(0.0, 1.0, is_nan(acc)), 0u);
  let r = select(wmax(t, select(acc, -inf(), is_nan(acc)), 1u), nan(), hasNan > 0.0);`,
    min: `${strided('inf()', 'if (v < acc || is_nan(v)) { acc = v; }')}
  let hasNan = wmax(t, select(0.0, 1.0, is_nan(acc)), 0u);
  let r = select(-wmax(t, select(-acc, -inf(), is_nan(acc)), 1u), nan(), hasNan > 0.0);`,
    logsumexp: `${strided('-inf()', 'acc = max(acc, v);')}
  let m = wmax(t, acc, 0u);
  var s = 0.0;
  for (var j = t; j < n; j = j + ${WG}u) { s = s + exp(f32(x[at(row, j)]) - m); }
  let z = wsum(t, s, 1u);
  let r = select(m + log(z), -inf(), m == -inf());`,
  };
  const code = perRow(
    buffers([
      ['x', x.dtype, false],
      ['y', x.dtype, true],
    ]),
    `let n = pu(1u);
  ${body[op]}
  if (t == 0u) { y[row] = ${x.dtype}(r); }`,
    AT,
  );
  rt.run(`reduce ${op} ([${outer}, ${n}, ${inner}] ${x.dtype})`, code, [x, out], [outer * inner, n, inner], [], outer * inner);
  return out;
}

/** i32 index of the max / min; ties go to the lowest index. */
export function argReduce(rt: GpuRuntime, op: 'argmax' | 'argmin', x: GpuStorage, outer: number, n: number, inner: number): GpuStorage {
  const out = rt.alloc('i32', outer * inner);
  const better = op === 'argmax' ? '>' : '<';
  const code = perRow(
    buffers([
      ['x', x.dtype, false],
      ['y', 'i32', true],
    ]),
    `let n = pu(1u);
  var best = 0xffffffffu;
  var bestV = 0.0;
  for (var j = t; j < n; j = j + ${WG}u) {
    let v = f32(x[at(row, j)]);
    if (best == 0xffffffffu || v ${better} bestV) { best = j; bestV = v; }
  }
  vals[t] = bestV;
  ids[t] = best;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (t < s) {
      let oi = ids[t + s];
      let ov = vals[t + s];
      let mi = ids[t];
      if (oi != 0xffffffffu && (mi == 0xffffffffu || ov ${better} vals[t] || (ov == vals[t] && oi < mi))) { ids[t] = oi; vals[t] = ov; }
    }
    workgroupBarrier();
  }
  if (t == 0u) { y[row] = i32(ids[0]); }`,
    `${AT}
var<workgroup> vals: array<f32, ${WG}>;
var<workgroup> ids: array<u32, ${WG}>;`,
  );
  rt.run(`argReduce ${op} ([${outer}, ${n}, ${inner}])`, code, [x, out], [outer * inner, n, inner], [], outer * inner);
  return out;
}

/** One invocation per (outer, inner) column, walking its n values in order. */
export function cumsum(rt: GpuRuntime, x: GpuStorage, outer: number, n: number, inner: number, reverse: boolean): GpuStorage {
  const out = rt.alloc(x.dtype, x.length);
  const code = perElement(
    buffers([
      ['x', x.dtype, false],
      ['y', x.dtype, true],
    ]),
    `let n = pu(1u); let inner = pu(2u);
  let base = (i / inner) * n * inner + i % inner;
  var acc = ${x.dtype}(0);
  for (var s = 0u; s < n; s = s + 1u) {
    let j = select(s, n - 1u - s, pu(3u) == 1u);
    acc = acc + x[base + j * inner];
    y[base + j * inner] = acc;
  }`,
  );
  rt.run(
    `cumsum ([${outer}, ${n}, ${inner}])`,
    code,
    [x, out],
    [outer * inner, n, inner, reverse ? 1 : 0],
    [],
    Math.ceil((outer * inner) / WG),
  );
  return out;
}
