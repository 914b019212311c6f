// A small safetensors reader that also accepts U8/I8 tensors (MXFP4 blocks and scales in
// GPT-OSS checkpoints), which src/io/safetensors.ts does not. Used by the HF loader only as a
// fallback when readSafetensorsSync rejects a file for its dtypes.
import * as fs from 'node:fs';
import { bf16ArrayToF32, f16ArrayToF32 } from '../../io/half.js';

export interface HfTensor {
  dtype: string;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array;
}

const SIZES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1, I8: 1 };

export function readSafetensorsWithBytesSync(path: string): Map<string, HfTensor> {
  const buf = fs.readFileSync(path);
  if (buf.length < 8) throw new Error(`${path}: not a safetensors file (${buf.length} bytes)`);
  const n = Number(buf.readBigUInt64LE(0));
  if (n <= 0 || 8 + n > buf.length) throw new Error(`${path}: bad safetensors header length ${n}`);
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + n;
  const out = new Map<string, HfTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const size = SIZES[info.dtype];
    if (size === undefined) throw new Error(`${path}: tensor '${name}' has dtype ${info.dtype}; supported here: ${Object.keys(SIZES).join(', ')}`);
    const [b, e] = info.data_offsets;
    const count = info.shape.reduce((p, d) => p * d, 1);
    if (e - b !== count * size || base + e > buf.length) throw new Error(`${path}: tensor '${name}' data_offsets [${b}, ${e}] do not fit shape [${info.shape.join(', ')}] ${info.dtype}`);
    const bytes = new Uint8Array(buf.buffer.slice(buf.byteOffset + base + b, buf.byteOffset + base + e));
    const dv = new DataView(bytes.buffer);
    let data: HfTensor['data'];
    switch (info.dtype) {
      case 'U8': data = bytes; break;
      case 'I8': data = new Int8Array(bytes.buffer); break;
      case 'F32': data = Float32Array.from({ length: count }, (_, i) => dv.getFloat32(4 * i, true)); break;
      case 'F64': data = Float64Array.from({ length: count }, (_, i) => dv.getFloat64(8 * i, true)); break;
      case 'I32': data = Int32Array.from({ length: count }, (_, i) => dv.getInt32(4 * i, true)); break;
      case 'I64': data = Int32Array.from({ length: count }, (_, i) => Number(dv.getBigInt64(8 * i, true))); break;
      default: {
        const u16 = Uint16Array.from({ length: count }, (_, i) => dv.getUint16(2 * i, true));
        data = info.dtype === 'F16' ? f16ArrayToF32(u16) : bf16ArrayToF32(u16);
      }
    }
    out.set(name, { dtype: info.dtype, shape: info.shape.slice(), data });
  }
  return out;
}
