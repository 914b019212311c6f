// Top-k and stable argsort by ranks: each invocation counts the row's elements that sort
// before its own (by value, NaN as the largest, ties by index) and writes itself at that rank.
// O(n^2) per row: meant for router rows (n = experts), not long sorts.
import type { GpuRuntime, GpuStorage } from '../runtime.js';
import { WG, buffers, perElement } from './wgsl.js';

const RANK = `
fn key(v: f32) -> f32 { return select(v, inf(), is_nan(v)); }
fn rank(row: u32, j: u32, n: u32, desc: bool) -> u32 {
  let kj = key(f32(x[row * n + j]));
  var r = 0u;
  for (var q = 0u; q < n; q = q + 1u) {
    let kq = key(f32(x[row * n + q]));
    let before = select((kq < kj), (kq > kj), desc) || (kq == kj && q < j);
    r = r + select(0u, 1u, before);
  }
  return r;
}`;

export function argsort(rt: GpuRuntime, x: GpuStorage, rows: number, n: number, descending: boolean): GpuStorage {
  const out = rt.alloc('i32', rows * n);
  const code = perElement(
    buffers([
      ['x', x.dtype, false],
      ['y', 'i32', true],
    ]),
    `let n = pu(1u); let row = i / n; let j = i % n;
  y[row * n + rank(row, j, n, pu(2u) == 1u)] = i32(j);`,
    RANK,
  );
  rt.run(`argsort ([${rows}, ${n}])`, code, [x, out], [rows * n, n, descending ? 1 : 0], [], Math.ceil((rows * n) / WG));
  return out;
}

export function topk(
  rt: GpuRuntime,
  x: GpuStorage,
  rows: number,
  n: number,
  k: number,
  largest: boolean,
): { values: GpuStorage; indices: GpuStorage } {
  const values = rt.alloc(x.dtype, rows * k);
  const indices = rt.alloc('i32', rows * k);
  const code = perElement(
    buffers([
      ['x', x.dtype, false],
      ['vals', x.dtype, true],
      ['ids', 'i32', true],
    ]),
    `let n = pu(1u); let k = pu(3u); let row = i / n; let j = i % n;
  let r = rank(row, j, n, pu(2u) == 1u);
  if (r < k) { vals[row * k + r] = x[i]; ids[row * k + r] = i32(j); }`,
    RANK,
  );
  rt.run(`topk ([${rows}, ${n}], k = ${k})`, code, [x, values, indices], [rows * n, n, largest ? 1 : 0, k], [], Math.ceil((rows * n) / WG));
  return { values, indices };
}
