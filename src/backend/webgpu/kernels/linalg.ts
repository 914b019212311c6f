// Batched matmul: 32 x 32 output tiles per workgroup of 8 x 8 invocations, each holding a
// 4 x 4 register block; A and B stream through shared memory 16 along k at a time. The
// transposes are folded into the tile loads (no transposed copies).
import type { GpuRuntime, GpuStorage } from '../runtime.js';
import { buffers, withParams } from './wgsl.js';

const TILE = 32;
const KT = 16;

const MATMUL = withParams(`
${buffers([
  ['A', 'f32', false],
  ['B', 'f32', false],
  ['C', 'f32', true],
])}
var<workgroup> As: array<f32, ${KT * TILE}>;
var<workgroup> Bs: array<f32, ${KT * TILE}>;
@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let M = pu(0u); let K = pu(1u); let N = pu(2u);
  let transA = pu(3u) == 1u; let transB = pu(4u) == 1u;
  let aOff = wg.z * pu(5u); let bOff = wg.z * pu(6u);
  let row0 = wg.y * ${TILE}u; let col0 = wg.x * ${TILE}u;
  let tid = l.y * 8u + l.x;
  var acc: array<f32, 16>;
  for (var e = 0u; e < 16u; e = e + 1u) { acc[e] = 0.0; }
  for (var p0 = 0u; p0 < K; p0 = p0 + ${KT}u) {
    for (var e = tid; e < ${KT * TILE}u; e = e + 64u) {
      // A tile: ${TILE} rows x ${KT} k, stored k-major
      let r = e / ${KT}u; let ka = e % ${KT}u; let i = row0 + r; let pa = p0 + ka;
      var va = 0.0;
      if (i < M && pa < K) { va = A[aOff + select(i * K + pa, pa * M + i, transA)]; }
      As[ka * ${TILE}u + r] = va;
      // B tile: ${KT} k x ${TILE} columns
      let kb = e / ${TILE}u; let c = e % ${TILE}u; let j = col0 + c; let pb = p0 + kb;
      var vb = 0.0;
      if (j < N && pb < K) { vb = B[bOff + select(pb * N + j, j * K + pb, transB)]; }
      Bs[kb * ${TILE}u + c] = vb;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${KT}u; kk = kk + 1u) {
      var ar: array<f32, 4>;
      var br: array<f32, 4>;
      for (var q = 0u; q < 4u; q = q + 1u) {
        ar[q] = As[kk * ${TILE}u + l.y * 4u + q];
        br[q] = Bs[kk * ${TILE}u + l.x * 4u + q];
      }
      for (var r = 0u; r < 4u; r = r + 1u) {
        for (var c = 0u; c < 4u; c = c + 1u) { acc[r * 4u + c] = acc[r * 4u + c] + ar[r] * br[c]; }
      }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r = r + 1u) {
    for (var c = 0u; c < 4u; c = c + 1u) {
      let i = row0 + l.y * 4u + r; let j = col0 + l.x * 4u + c;
      if (i < M && j < N) { C[wg.z * M * N + i * N + j] = acc[r * 4u + c]; }
    }
  }
}`);

export function matmul(
  rt: GpuRuntime,
  a: GpuStorage,
  b: GpuStorage,
  batch: number,
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
  aBatchStride: number,
  bBatchStride: number,
): GpuStorage {
  const op = `matmul ([${batch}] [${m}, ${k}]${transA ? 'ᵀ' : ''} @ [${k}, ${n}]${transB ? 'ᵀ' : ''})`;
  if (a.dtype !== 'f32' || b.dtype !== 'f32') throw new TypeError(`webgpu: ${op} needs f32 operands (got ${a.dtype}, ${b.dtype})`);
  const maxGroups = rt.device.limits.maxComputeWorkgroupsPerDimension;
  if (batch > maxGroups) throw new RangeError(`webgpu: ${op}: batch ${batch} exceeds the device's ${maxGroups} workgroups per dimension`);
  const c = rt.alloc('f32', batch * m * n);
  const groups: [number, number, number] = [Math.ceil(n / TILE), Math.ceil(m / TILE), batch];
  rt.run(op, MATMUL, [a, b, c], [m, k, n, transA ? 1 : 0, transB ? 1 : 0, aBatchStride, bBatchStride], [], groups);
  return c;
}
