// A checkpoint directory against its config: every tensor by name (missing, unexpected, wrong
// shape, wrong dtype) from the headers alone, then per-expert weight norms reading only the
// experts' bytes.
import { type CheckpointIndex, type CheckpointTensor, readTensorRows, tensorBytes } from '../io/safetensors-sharded.js';
import { dequantizeMxfp4 } from '../moe/hf/mxfp4.js';
import { type CheckpointLayout, type ExpertSlice, checkpointLayout } from './checkpoint-layout.js';
import type { ModelSpec } from './model-spec.js';

export interface ShapeMismatch {
  name: string;
  expected: number[];
  actual: number[];
}
export interface DtypeMismatch {
  name: string;
  expected: string;
  actual: string;
}

export interface CheckpointCheck {
  files: number;
  tensors: number;
  bytes: number;
  missing: string[];
  unexpected: string[];
  wrongShape: ShapeMismatch[];
  wrongDtype: DtypeMismatch[];
  /** Listed in the shard index but absent from that shard's header. */
  listedButAbsent: string[];
  /** Present under a prefix outside the decoder (vision tower): not checked. */
  outside: number;
  ok: boolean;
}

const FLOATS = ['F32', 'F16', 'BF16', 'F64'];
const TORCH_DTYPE: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64' };

/** The float dtype the config promises (torch_dtype / dtype), or null (any float). */
export function configFloatDtype(config: Record<string, unknown>): string | null {
  const t = config['torch_dtype'] ?? config['dtype'];
  return typeof t === 'string' ? (TORCH_DTYPE[t] ?? null) : null;
}

export function checkCheckpoint(
  spec: ModelSpec,
  index: CheckpointIndex,
  config: Record<string, unknown>,
  layout?: CheckpointLayout,
): CheckpointCheck {
  const L = layout ?? checkpointLayout(spec, new Set(index.tensors.keys()));
  const want = configFloatDtype(config);
  const out: CheckpointCheck = {
    files: index.files.length,
    tensors: index.tensors.size,
    bytes: 0,
    missing: [],
    unexpected: [],
    wrongShape: [],
    wrongDtype: [],
    listedButAbsent: index.listedButAbsent,
    outside: 0,
    ok: false,
  };
  for (const [name, e] of L.expected) {
    const t = index.tensors.get(name);
    if (!t) {
      out.missing.push(name);
      continue;
    }
    if (t.shape.join(',') !== e.shape.join(',')) out.wrongShape.push({ name, expected: e.shape, actual: t.shape });
    // 1-D parameters kept in F32 under a 16-bit model are normal (DeepSeek-V3 stores e_score_correction_bias so)
    const fp32Vector = t.shape.length === 1 && t.dtype === 'F32';
    if (e.dtype !== null ? t.dtype !== e.dtype : !FLOATS.includes(t.dtype) || (want !== null && t.dtype !== want && !fp32Vector)) {
      out.wrongDtype.push({ name, expected: e.dtype ?? want ?? 'a float dtype', actual: t.dtype });
    }
  }
  for (const [name, t] of index.tensors) {
    out.bytes += tensorBytes(t);
    if (L.expected.has(name)) continue;
    if (L.outside.some((p) => name.startsWith(p))) out.outside++;
    else out.unexpected.push(name);
  }
  out.ok = out.missing.length + out.unexpected.length + out.wrongShape.length + out.wrongDtype.length + out.listedButAbsent.length === 0;
  return out;
}

export interface ExpertNorms {
  layer: number;
  /** Frobenius norm of each expert's gate, up and down weights together. */
  norms: number[];
}

function sliceSumSquares(s: ExpertSlice, index: CheckpointIndex): { ss: number; bytes: number } {
  const t = index.tensors.get(s.name) as CheckpointTensor;
  const count = s.count ?? t.shape[0] ?? 1;
  const { data, shape } = readTensorRows(s.name, t, s.first, count);
  const fileBytes = (x: CheckpointTensor) => (tensorBytes(x) / (x.shape[0] ?? 1)) * count;
  let values: ArrayLike<number> = data;
  let bytes = fileBytes(t);
  if (s.mxfp4Scales) {
    const st = index.tensors.get(s.mxfp4Scales)!;
    const sc = readTensorRows(s.mxfp4Scales, st, s.first, count);
    values = dequantizeMxfp4(data, shape, sc.data, sc.shape).data;
    bytes += fileBytes(st);
  }
  if (s.fp8Scales) {
    // whole [out, in] tensor: each value times its block's inverse scale
    const st = index.tensors.get(s.fp8Scales.name)!;
    const sc = readTensorRows(s.fp8Scales.name, st).data;
    const [b0, b1] = s.fp8Scales.block;
    const [out, inp] = shape as [number, number];
    const cols = Math.ceil(inp / b1);
    const deq = new Float64Array(out * inp);
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inp; i++) deq[o * inp + i] = data[o * inp + i]! * sc[Math.floor(o / b0) * cols + Math.floor(i / b1)]!;
    values = deq;
    bytes += tensorBytes(st);
  }
  let ss = 0;
  for (let i = 0; i < values.length; i++) ss += values[i]! * values[i]!;
  return { ss, bytes };
}

/** Bytes the expert norms will read (for a progress bar). */
export function expertNormBytes(layout: CheckpointLayout, index: CheckpointIndex): number {
  let n = 0;
  for (const l of layout.experts) {
    for (const slices of l.slices) {
      for (const s of slices) {
        for (const name of [s.name, s.mxfp4Scales, s.fp8Scales?.name]) {
          const t = name ? index.tensors.get(name) : undefined;
          if (t) n += s.count === null ? tensorBytes(t) : (tensorBytes(t) / (t.shape[0] ?? 1)) * s.count;
        }
      }
    }
  }
  return n;
}

/**
 * Per-expert weight norms of every MoE layer, reading only the experts' bytes. Layers whose
 * expert tensors are missing or misshapen (see checkCheckpoint) are skipped.
 */
export function expertWeightNorms(
  layout: CheckpointLayout,
  index: CheckpointIndex,
  check: CheckpointCheck,
  onProgress?: (bytesRead: number) => void,
): ExpertNorms[] {
  const bad = new Set([...check.missing, ...check.wrongShape.map((w) => w.name), ...check.wrongDtype.map((w) => w.name)]);
  const result: ExpertNorms[] = [];
  let read = 0;
  for (const l of layout.experts) {
    const broken = (s: ExpertSlice) =>
      bad.has(s.name) ||
      (s.mxfp4Scales !== undefined && bad.has(s.mxfp4Scales)) ||
      (s.fp8Scales !== undefined && bad.has(s.fp8Scales.name));
    if (l.slices.some((ss) => ss.some(broken))) continue;
    const norms = l.slices.map((slices) => {
      let ss = 0;
      for (const s of slices) {
        const r = sliceSumSquares(s, index);
        ss += r.ss;
        read += r.bytes;
      }
      onProgress?.(read);
      return Math.sqrt(ss);
    });
    result.push({ layer: l.layer, norms });
  }
  return result;
}
