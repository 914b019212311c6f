// MoE kernels with device-side routing: the slot plan from the top-k ids (counts, exclusive
// prefix sum, stable ranks), the grouped GEMM over expert segments with the row gather and
// scale and its weight gradient, the SwiGLU / GPT-OSS activations and SwiGLU's backward, and
// the weighted combine. Everything stays on the GPU (seg is a storage,
// not a host array), so a layer can route without a synchronous read. Held to the reference
// twins (src/backend/reference/moe.ts) by test/webgpu-moe-kernels.test.ts. MoELayer reaches
// the slot plan and the grouped GEMMs through Backend.deviceMoe (../moe.ts) on the execution
// plan's 'device' path.
import type { GpuRuntime, GpuStorage } from '../runtime.js';
import { fill } from './elementwise.js';
import { WG, buffers, perElement, withParams } from './wgsl.js';

const groups = (n: number) => Math.ceil(n / WG);
/** Output tile edge of the grouped GEMMs. */
const TILE = 32;
/** "No capacity" as the kernels' u32 capacity word. */
const DROPLESS = 0xffffffff;

export interface DeviceSlotPlan {
  /** [E] slots routed to each expert (before capacity). */
  counts: GpuStorage;
  /** [E + 1] offsets of the sorted rows (expert e owns [seg[e], seg[e+1])). */
  seg: GpuStorage;
  /** [T·K] sorted row of each slot, -1 when dropped. */
  slotRows: GpuStorage;
  /** [T·K] slot of each sorted row; rows past seg[E] hold -1. */
  sortedSlots: GpuStorage;
}

/** Per sorted row of a plan: its slot, token and expert (0 on padding rows past seg[E]) and whether it is real (1.0 / 0.0). */
export function planRows(
  rt: GpuRuntime,
  plan: DeviceSlotPlan,
  topK: number,
  numExperts: number,
): { rowSlots: GpuStorage; rowTokens: GpuStorage; rowExperts: GpuStorage; rowValid: GpuStorage } {
  const S = plan.sortedSlots.length;
  const rowSlots = rt.alloc('i32', S);
  const rowTokens = rt.alloc('i32', S);
  const rowExperts = rt.alloc('i32', S);
  const rowValid = rt.alloc('f32', S);
  rt.run(
    `slotPlan row info (${S} rows, ${numExperts} experts)`,
    perElement(
      buffers([
        ['seg', 'i32', false],
        ['sortedSlots', 'i32', false],
        ['rowSlots', 'i32', true],
        ['rowTokens', 'i32', true],
        ['rowExperts', 'i32', true],
        ['rowValid', 'f32', true],
      ]),
      `let E = pu(1u); let K = pu(2u);
  let real = i < u32(seg[E]);
  let slot = select(0u, u32(sortedSlots[i]), real);
  var e = 0u;
  while (real && e < E && u32(seg[e + 1u]) <= i) { e = e + 1u; }
  rowSlots[i] = i32(slot);
  rowTokens[i] = i32(slot / K);
  rowExperts[i] = select(0, i32(e), real);
  rowValid[i] = select(0.0, 1.0, real);`,
    ),
    [plan.seg, plan.sortedSlots, rowSlots, rowTokens, rowExperts, rowValid],
    [S, numExperts, topK],
    [],
    groups(S),
  );
  return { rowSlots, rowTokens, rowExperts, rowValid };
}

/** [E] i32: how many of the ids name each expert. */
export function slotCounts(rt: GpuRuntime, ids: GpuStorage, numExperts: number): GpuStorage {
  const counts = rt.alloc('i32', numExperts);
  rt.run(
    `expert counts (${ids.length} slots, ${numExperts} experts)`,
    perElement(
      buffers([
        ['ids', 'i32', false],
        ['counts', 'i32', true],
      ]),
      `var c = 0; for (var s = 0u; s < pu(1u); s = s + 1u) { c = c + select(0, 1, ids[s] == i32(i)); } counts[i] = c;`,
    ),
    [ids, counts],
    [numExperts, ids.length],
    [],
    groups(numExperts),
  );
  return counts;
}

/** The stable slot plan of [T·K] expert ids: each expert keeps its first `capacity` slots (null: all). */
export function slotPlan(rt: GpuRuntime, ids: GpuStorage, numExperts: number, capacity: number | null): DeviceSlotPlan {
  const S = ids.length;
  const E = numExperts;
  const cap = capacity ?? DROPLESS;
  const counts = slotCounts(rt, ids, E);
  const seg = rt.alloc('i32', E + 1);
  const slotRows = rt.alloc('i32', S);
  const sortedSlots = fill(rt, 'i32', S, -1);
  const shape = `(${S} slots, ${E} experts)`;
  // one invocation: the exclusive prefix sum of the kept counts (E is small)
  rt.run(
    `slotPlan offsets ${shape}`,
    perElement(
      buffers([
        ['counts', 'i32', false],
        ['seg', 'i32', true],
      ]),
      `var acc = 0u; seg[0] = 0;
  for (var e = 0u; e < pu(1u); e = e + 1u) { acc = acc + min(u32(counts[e]), pu(2u)); seg[e + 1u] = i32(acc); }`,
    ),
    [counts, seg],
    [1, E, cap],
    [],
    1,
  );
  rt.run(
    `slotPlan rows ${shape}`,
    perElement(
      buffers([
        ['ids', 'i32', false],
        ['seg', 'i32', false],
        ['slotRows', 'i32', true],
        ['sortedSlots', 'i32', true],
      ]),
      `let e = ids[i];
  var rank = 0u;
  for (var s = 0u; s < i; s = s + 1u) { rank = rank + select(0u, 1u, ids[s] == e); }
  if (e >= 0 && u32(e) < pu(1u) && rank < pu(2u)) {
    let row = u32(seg[e]) + rank;
    slotRows[i] = i32(row);
    sortedSlots[row] = i32(i);
  } else {
    slotRows[i] = -1;
  }`,
    ),
    [ids, seg, slotRows, sortedSlots],
    [S, E, cap],
    [],
    groups(S),
  );
  return { counts, seg, slotRows, sortedSlots };
}

export interface GroupedGemmArgs {
  /** Rows of k values; sorted row r reads row aIdx[r] (null: row r). */
  a: GpuStorage;
  aIdx: GpuStorage | null;
  /** [rows] per-row factor (null: 1). */
  scale: GpuStorage | null;
  /** B_e = b + e·k·n, stored [k, n], or [n, k] when trans. */
  b: GpuStorage;
  trans: boolean;
  seg: GpuStorage;
  numExperts: number;
  /** Rows of the output (an upper bound of seg[E]: rows past it are 0). */
  rows: number;
  n: number;
  k: number;
}

/**
 * The inner step of both grouped GEMMs: 32 x 32 output tiles per workgroup of 8 x 8
 * invocations, each a 4 x 4 register block, from As / Bs holding 16 steps of the summed axis
 * (As[s·32 + tile row], Bs[s·32 + tile column]), as the dense matmul (linalg.ts) does.
 */
const TILE_STEP = `var<workgroup> As: array<f32, 512>;
var<workgroup> Bs: array<f32, 512>;
fn tileStep(l: vec3u, acc: ptr<function, array<f32, 16>>) {
  for (var s = 0u; s < 16u; s = s + 1u) {
    var ar: array<f32, 4>;
    var br: array<f32, 4>;
    for (var q = 0u; q < 4u; q = q + 1u) {
      ar[q] = As[s * 32u + l.y * 4u + q];
      br[q] = Bs[s * 32u + l.x * 4u + q];
    }
    for (var r = 0u; r < 4u; r = r + 1u) {
      for (var c = 0u; c < 4u; c = c + 1u) { (*acc)[r * 4u + c] = (*acc)[r * 4u + c] + ar[r] * br[c]; }
    }
  }
}`;

/**
 * A 32-row tile can hold rows of several experts: it runs once per expert whose segment meets
 * it, each pass loading only that expert's rows (the others read as 0) against B_e. Rows past
 * seg[E] belong to no expert and come out 0. seg is read-only storage, so the loop bounds are
 * uniform and the barriers inside it are allowed.
 */
const GROUPED_GEMM = withParams(`
${buffers([
  ['A', 'f32', false],
  ['aIdx', 'i32', false],
  ['scale', 'f32', false],
  ['B', 'f32', false],
  ['seg', 'i32', false],
  ['C', 'f32', true],
])}
${TILE_STEP}
@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let rows = pu(0u); let n = pu(1u); let k = pu(2u); let E = pu(3u);
  let gather = pu(4u) == 1u; let scaled = pu(5u) == 1u; let trans = pu(6u) == 1u;
  let row0 = wg.y * 32u; let col0 = wg.x * 32u; let rowEnd = min(row0 + 32u, rows);
  let tid = l.y * 8u + l.x;
  var acc: array<f32, 16>;
  for (var q = 0u; q < 16u; q = q + 1u) { acc[q] = 0.0; }
  var e = 0u;
  while (e < E && u32(seg[e + 1u]) <= row0) { e = e + 1u; }
  while (e < E && u32(seg[e]) < rowEnd) {
    let lo = u32(seg[e]); let hi = u32(seg[e + 1u]); let boff = e * k * n;
    for (var p0 = 0u; p0 < k; p0 = p0 + 16u) {
      for (var q = tid; q < 512u; q = q + 64u) {
        let r = q / 16u; let ka = q % 16u; let i = row0 + r; let pa = p0 + ka;
        var va = 0.0;
        if (i >= lo && i < hi && pa < k) { va = A[select(i, u32(aIdx[i]), gather) * k + pa]; }
        As[ka * 32u + r] = va;
        let kb = q / 32u; let c = q % 32u; let j = col0 + c; let pb = p0 + kb;
        var vb = 0.0;
        if (j < n && pb < k) { vb = B[boff + select(pb * n + j, j * k + pb, trans)]; }
        Bs[kb * 32u + c] = vb;
      }
      workgroupBarrier();
      tileStep(l, &acc);
      workgroupBarrier();
    }
    e = e + 1u;
  }
  for (var r = 0u; r < 4u; r = r + 1u) {
    let i = row0 + l.y * 4u + r;
    if (i >= rows) { continue; }
    let f = select(1.0, scale[i], scaled);
    for (var c = 0u; c < 4u; c = c + 1u) {
      let j = col0 + l.x * 4u + c;
      if (j < n) { C[i * n + j] = acc[r * 4u + c] * f; }
    }
  }
}`);

/** c [rows, n]: row r of expert e (seg[e] <= r < seg[e+1]) = scale[r] · a[aIdx[r], :] @ op(B_e). */
export function groupedGemm(rt: GpuRuntime, g: GroupedGemmArgs): GpuStorage {
  const c = rt.alloc('f32', g.rows * g.n);
  const op = `groupedGemm (${g.rows} rows, ${g.numExperts} experts, [${g.k}, ${g.n}]${g.trans ? 'ᵀ' : ''})`;
  rt.run(
    op,
    GROUPED_GEMM,
    [g.a, g.aIdx, g.scale, g.b, g.seg, c],
    [g.rows, g.n, g.k, g.numExperts, g.aIdx ? 1 : 0, g.scale ? 1 : 0, g.trans ? 1 : 0],
    [],
    [Math.ceil(g.n / TILE), Math.ceil(g.rows / TILE), 1],
  );
  return c;
}

/** Where gate q and up q sit in a row of gu: 'fused' = [gate | up], 'interleaved' = (gate, up) pairs (GPT-OSS). */
export type GateUpLayout = 'fused' | 'interleaved';

const GATE_UP = `fn gateAt(r: u32, q: u32, w: u32) -> u32 { return select(r * 2u * w + q, r * 2u * w + 2u * q, pu(2u) == 1u); }
fn upAt(r: u32, q: u32, w: u32) -> u32 { return select(r * 2u * w + w + q, r * 2u * w + 2u * q + 1u, pu(2u) == 1u); }`;

/**
 * h [rows, i] from the pre-activations gu [rows, 2i]: SwiGLU silu(gate) · up, or GPT-OSS's
 * clamped form (up + 1) · g · σ(α g) with g = min(gate, limit), up clamped to ±limit.
 * (GELU experts need no kernel of their own: the engine's gelu on the GEMM's output.)
 */
export function gatedActivation(
  rt: GpuRuntime,
  gu: GpuStorage,
  rows: number,
  i: number,
  layout: GateUpLayout,
  act: { kind: 'swiglu' } | { kind: 'gpt-oss'; limit: number; alpha: number },
): GpuStorage {
  const h = rt.alloc('f32', rows * i);
  const value =
    act.kind === 'swiglu'
      ? 'g / (1.0 + exp(-g)) * u'
      : 'min(g, pf(3u)) / (1.0 + exp(-pf(4u) * min(g, pf(3u)))) * (clamp(u, -pf(3u), pf(3u)) + 1.0)';
  const code = perElement(
    buffers([
      ['gu', 'f32', false],
      ['h', 'f32', true],
    ]),
    `let w = pu(1u); let r = i / w; let q = i % w;
  let g = gu[gateAt(r, q, w)];
  let u = gu[upAt(r, q, w)];
  h[i] = ${value};`,
    GATE_UP,
  );
  const floats = act.kind === 'swiglu' ? [] : [act.limit, act.alpha];
  rt.run(
    `${act.kind} ([${rows}, ${i}], ${layout})`,
    code,
    [gu, h],
    [rows * i, i, layout === 'interleaved' ? 1 : 0],
    floats,
    groups(rows * i),
  );
  return h;
}

/**
 * SwiGLU's backward (fused layout): dgu [rows, 2i] from dh = rowScale[r] · dy (rowScale null:
 * 1), and rowDot [rows] = <dy_r, h_r> (the combine weights' gradient).
 */
export function swigluBackward(
  rt: GpuRuntime,
  gu: GpuStorage,
  dy: GpuStorage,
  rowScale: GpuStorage | null,
  rows: number,
  i: number,
): { dgu: GpuStorage; rowDot: GpuStorage } {
  const dgu = rt.alloc('f32', rows * 2 * i);
  const rowDot = rt.alloc('f32', rows);
  const code = perElement(
    buffers([
      ['gu', 'f32', false],
      ['dy', 'f32', false],
      ['rowScale', 'f32', false],
      ['dgu', 'f32', true],
      ['rowDot', 'f32', true],
    ]),
    `let w = pu(1u); let r = i;
  let sc = select(1.0, rowScale[r], pu(2u) == 1u);
  var dot = 0.0;
  for (var q = 0u; q < w; q = q + 1u) {
    let g = gu[r * 2u * w + q]; let u = gu[r * 2u * w + w + q];
    let sg = 1.0 / (1.0 + exp(-g));
    let dyv = dy[r * w + q];
    let dh = sc * dyv;
    dgu[r * 2u * w + q] = dh * u * sg * (1.0 + g * (1.0 - sg));
    dgu[r * 2u * w + w + q] = dh * g * sg;
    dot = dot + dyv * g * sg * u;
  }
  rowDot[r] = dot;`,
  );
  rt.run(`swigluBackward ([${rows}, ${i}])`, code, [gu, dy, rowScale, dgu, rowDot], [rows, i, rowScale ? 1 : 0], [], groups(rows));
  return { dgu, rowDot };
}

/** One workgroup per 32 x 32 tile of dB_e (z = e), summing expert e's rows 16 at a time. */
const GROUPED_WGRAD = withParams(`
${buffers([
  ['A', 'f32', false],
  ['aIdx', 'i32', false],
  ['scale', 'f32', false],
  ['dY', 'f32', false],
  ['seg', 'i32', false],
  ['dB', 'f32', true],
])}
${TILE_STEP}
@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let k = pu(0u); let n = pu(1u); let gather = pu(2u) == 1u; let scaled = pu(3u) == 1u;
  let e = wg.z; let p0 = wg.y * 32u; let col0 = wg.x * 32u;
  let lo = u32(seg[e]); let hi = u32(seg[e + 1u]);
  let tid = l.y * 8u + l.x;
  var acc: array<f32, 16>;
  for (var q = 0u; q < 16u; q = q + 1u) { acc[q] = 0.0; }
  for (var r0 = lo; r0 < hi; r0 = r0 + 16u) {
    for (var q = tid; q < 512u; q = q + 64u) {
      let s = q / 32u; let t = q % 32u; let r = r0 + s;
      let p = p0 + t;
      var va = 0.0;
      if (r < hi && p < k) { va = select(1.0, scale[r], scaled) * A[select(r, u32(aIdx[r]), gather) * k + p]; }
      As[s * 32u + t] = va;
      let j = col0 + t;
      var vb = 0.0;
      if (r < hi && j < n) { vb = dY[r * n + j]; }
      Bs[s * 32u + t] = vb;
    }
    workgroupBarrier();
    tileStep(l, &acc);
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r = r + 1u) {
    let p = p0 + l.y * 4u + r;
    for (var c = 0u; c < 4u; c = c + 1u) {
      let j = col0 + l.x * 4u + c;
      if (p < k && j < n) { dB[(e * k + p) * n + j] = acc[r * 4u + c]; }
    }
  }
}`);

/** dB [E, k, n]: dB_e = Σ over expert e's rows r of scale[r] · a[aIdx[r], :]ᵀ ⊗ dy[r, :]. */
export function groupedWgrad(
  rt: GpuRuntime,
  g: {
    a: GpuStorage;
    aIdx: GpuStorage | null;
    scale: GpuStorage | null;
    dy: GpuStorage;
    seg: GpuStorage;
    numExperts: number;
    k: number;
    n: number;
  },
): GpuStorage {
  const db = rt.alloc('f32', g.numExperts * g.k * g.n);
  rt.run(
    `groupedWgrad (${g.numExperts} experts, [${g.k}, ${g.n}])`,
    GROUPED_WGRAD,
    [g.a, g.aIdx, g.scale, g.dy, g.seg, db],
    [g.k, g.n, g.aIdx ? 1 : 0, g.scale ? 1 : 0],
    [],
    [Math.ceil(g.n / TILE), Math.ceil(g.k / TILE), g.numExperts],
  );
  return db;
}

/** out [T, h] = Σ_k weights[t·K + k] · y[slotRows[t·K + k], :] over the kept slots. */
export function combine(
  rt: GpuRuntime,
  y: GpuStorage,
  slotRows: GpuStorage,
  weights: GpuStorage,
  numTokens: number,
  topK: number,
  h: number,
): GpuStorage {
  const out = rt.alloc('f32', numTokens * h);
  const code = perElement(
    buffers([
      ['y', 'f32', false],
      ['slotRows', 'i32', false],
      ['w', 'f32', false],
      ['out', 'f32', true],
    ]),
    `let h = pu(1u); let K = pu(2u); let t = i / h; let c = i % h;
  var acc = 0.0;
  for (var q = 0u; q < K; q = q + 1u) {
    let row = slotRows[t * K + q];
    if (row >= 0) { acc = acc + w[t * K + q] * y[u32(row) * h + c]; }
  }
  out[i] = acc;`,
  );
  rt.run(
    `combine (${numTokens} tokens, top-${topK}, ${h} wide)`,
    code,
    [y, slotRows, weights, out],
    [numTokens * h, h, topK],
    [],
    groups(numTokens * h),
  );
  return out;
}
