// WGSL pieces every kernel shares: the params uniform, buffer declarations, the linear
// invocation id over a grid spread across x and y, workgroup reductions, scalar math.
import { PARAM_WORDS } from '../runtime.js';

/** Invocations per workgroup of the 1-D kernels (within compatibility mode's 128). */
export const WG = 64;
/** Reductions a perRow kernel may make (each in its own shared-memory slot). */
const SLOTS = 3;

export type ElemType = 'f32' | 'i32';

const PARAMS = `
struct Params { w: array<vec4u, ${PARAM_WORDS / 4}> }
@group(0) @binding(0) var<uniform> P: Params;
fn pu(i: u32) -> u32 { return P.w[i / 4u][i % 4u]; }
fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }
// through a var: a constant expression cannot hold NaN or infinity
fn nan() -> f32 { var b = 0x7fc00000u; return bitcast<f32>(b); }
fn inf() -> f32 { var b = 0x7f800000u; return bitcast<f32>(b); }
fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
`;

/** Declarations of storage buffers at bindings 1..: [name, element type, writable]. */
export function buffers(list: readonly (readonly [string, ElemType, boolean])[]): string {
  return list
    .map(([name, t, rw], i) => `@group(0) @binding(${i + 1}) var<storage, ${rw ? 'read_write' : 'read'}> ${name}: array<${t}>;`)
    .join('\n');
}

/**
 * A kernel with one invocation per element: `body` sees `i` (the element index, < pu(0))
 * and returns early past the end. Params word 0 must be the element count.
 */
export function perElement(decls: string, body: string, helpers = ''): string {
  return `${PARAMS}
${decls}
${helpers}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let i = (wg.x + wg.y * nwg.x) * ${WG}u + l.x;
  if (i >= pu(0)) { return; }
  ${body}
}`;
}

/**
 * A kernel with one workgroup of WG invocations per row: `body` sees `row` (< pu(0)) and
 * `t` (the invocation within the workgroup), and may call wsum / wmax (results in every
 * invocation). Each call in a kernel takes its own slot (0 .. SLOTS-1) of shared memory:
 * with one array, a fast invocation's next reduction overwrote the total before slower ones
 * read it on Mesa's llvmpipe (a barrier between the read and the next write did not hold).
 */
export function perRow(decls: string, body: string, helpers = ''): string {
  return `${PARAMS}
${decls}
var<workgroup> red: array<f32, ${WG * SLOTS}>;
fn wsum(t: u32, v: f32, slot: u32) -> f32 {
  let b = slot * ${WG}u;
  red[b + t] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (t < s) { red[b + t] = red[b + t] + red[b + t + s]; }
    workgroupBarrier();
  }
  return red[b];
}
fn wmax(t: u32, v: f32, slot: u32) -> f32 {
  let b = slot * ${WG}u;
  red[b + t] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (t < s) { red[b + t] = max(red[b + t], red[b + t + s]); }
    workgroupBarrier();
  }
  return red[b];
}
${helpers}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= pu(0)) { return; }
  let t = l.x;
  ${body}
}`;
}

export function withParams(code: string): string {
  return `${PARAMS}\n${code}`;
}

/**
 * The flat offset of element i of a tensor of shape pu(sh..sh+rank) under the strides at
 * pu(st..st+rank) (broadcast: stride 0).
 */
export const BROADCAST_OFFSET = `
fn bcast(i: u32, rank: u32, sh: u32, st: u32) -> u32 {
  var r = i;
  var o = 0u;
  for (var d = i32(rank) - 1; d >= 0; d = d - 1) {
    let n = pu(sh + u32(d));
    o = o + (r % n) * pu(st + u32(d));
    r = r / n;
  }
  return o;
}`;

/** Stable scalar math WGSL lacks: tanh without overflow, sigmoid, erf (|error| < 1.5e-7). */
export const SCALAR_MATH = `
fn tanh_s(v: f32) -> f32 { let e = exp(-2.0 * abs(v)); return sign(v) * (1.0 - e) / (1.0 + e); }
fn sigmoid(v: f32) -> f32 {
  if (v >= 0.0) { return 1.0 / (1.0 + exp(-v)); }
  let e = exp(v);
  return e / (1.0 + e);
}
fn erf_s(v: f32) -> f32 {
  let a = abs(v);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return sign(v) * y;
}`;

/** The param words of a broadcast op: rank, then the shape, then each operand's strides. */
export function broadcastWords(outShape: readonly number[], strides: readonly (readonly number[])[]): number[] {
  return [outShape.length, ...outShape, ...strides.flat()];
}
