// Index kernels along the middle axis of [outer, n, inner]. The adds give each invocation one
// (outer, inner) column and walk the indices in order (WGSL has no float atomics; the order
// also matches the reference's sums). Out-of-range indices cannot be checked without a read:
// selects yield 0 and adds skip them (the CPU backends throw).
import type { GpuRuntime, GpuStorage } from '../runtime.js';
import { WG, buffers, perElement } from './wgsl.js';

const groups = (n: number) => Math.ceil(n / WG);
const dims = (outer: number, n: number, inner: number) => `[${outer}, ${n}, ${inner}]`;

export function indexSelect(rt: GpuRuntime, x: GpuStorage, outer: number, n: number, inner: number, idx: GpuStorage): GpuStorage {
  const m = idx.length;
  const out = rt.alloc(x.dtype, outer * m * inner);
  const code = perElement(
    buffers([
      ['x', x.dtype, false],
      ['idx', 'i32', false],
      ['y', x.dtype, true],
    ]),
    `let n = pu(1u); let inner = pu(2u); let m = pu(3u);
  let o = i / (m * inner); let j = (i / inner) % m; let c = i % inner;
  let k = idx[j];
  y[i] = select(${x.dtype}(0), x[(o * n + u32(k)) * inner + c], k >= 0 && u32(k) < n);`,
  );
  rt.run(`indexSelect (${dims(outer, n, inner)} by ${m} indices)`, code, [x, idx, out], [out.length, n, inner, m], [], groups(out.length));
  return out;
}

export function indexAddInPlace(
  rt: GpuRuntime,
  target: GpuStorage,
  outer: number,
  n: number,
  inner: number,
  idx: GpuStorage,
  src: GpuStorage,
): void {
  const m = idx.length;
  const code = perElement(
    buffers([
      ['idx', 'i32', false],
      ['src', src.dtype, false],
      ['y', target.dtype, true],
    ]),
    `let n = pu(1u); let inner = pu(2u); let m = pu(3u);
  let o = i / inner; let c = i % inner;
  for (var j = 0u; j < m; j = j + 1u) {
    let k = idx[j];
    if (k >= 0 && u32(k) < n) { let d = (o * n + u32(k)) * inner + c; y[d] = y[d] + ${target.dtype}(src[(o * m + j) * inner + c]); }
  }`,
  );
  rt.run(
    `indexAddInPlace (${dims(outer, n, inner)} by ${m} indices)`,
    code,
    [idx, src, target],
    [outer * inner, n, inner, m],
    [],
    groups(outer * inner),
  );
}

export function gather(rt: GpuRuntime, x: GpuStorage, outer: number, n: number, inner: number, idx: GpuStorage, m: number): GpuStorage {
  const out = rt.alloc(x.dtype, outer * m * inner);
  const code = perElement(
    buffers([
      ['x', x.dtype, false],
      ['idx', 'i32', false],
      ['y', x.dtype, true],
    ]),
    `let n = pu(1u); let inner = pu(2u); let m = pu(3u);
  let o = i / (m * inner); let c = i % inner;
  let k = idx[i];
  y[i] = select(${x.dtype}(0), x[(o * n + u32(k)) * inner + c], k >= 0 && u32(k) < n);`,
  );
  rt.run(`gather (${dims(outer, n, inner)} to ${m})`, code, [x, idx, out], [out.length, n, inner, m], [], groups(out.length));
  return out;
}

export function scatterAddInPlace(
  rt: GpuRuntime,
  target: GpuStorage,
  outer: number,
  n: number,
  inner: number,
  idx: GpuStorage,
  src: GpuStorage,
  m: number,
): void {
  const code = perElement(
    buffers([
      ['idx', 'i32', false],
      ['src', src.dtype, false],
      ['y', target.dtype, true],
    ]),
    `let n = pu(1u); let inner = pu(2u); let m = pu(3u);
  let o = i / inner; let c = i % inner;
  for (var j = 0u; j < m; j = j + 1u) {
    let p = (o * m + j) * inner + c;
    let k = idx[p];
    if (k >= 0 && u32(k) < n) { let d = (o * n + u32(k)) * inner + c; y[d] = y[d] + ${target.dtype}(src[p]); }
  }`,
  );
  rt.run(
    `scatterAddInPlace (${dims(outer, n, inner)} from ${m})`,
    code,
    [idx, src, target],
    [outer * inner, n, inner, m],
    [],
    groups(outer * inner),
  );
}
