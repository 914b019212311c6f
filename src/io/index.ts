// Public file I/O API: atomic writes, safetensors, and half-precision conversions.
export { writeFileAtomic, writeFileAtomicSync, writeJsonAtomic, writeJsonAtomicSync } from './atomic.js';
export {
  bf16ArrayToF32,
  bf16BitsToF32,
  f16ArrayToF32,
  f16BitsToF32,
  f32ArrayToBf16,
  f32ArrayToF16,
  f32ToBf16Bits,
  f32ToF16Bits,
  narrowToHalf,
  widenHalfToF32,
} from './half.js';
export {
  SAFETENSORS_DTYPES,
  SAFETENSORS_DTYPE_SIZE,
  SAFETENSORS_MAX_HEADER_LENGTH,
  type ReadSafetensorsOptions,
  SafetensorsError,
  decodeTensor,
  parseSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  readSafetensorsHeaderSync,
  readSafetensorsSync,
  serializeSafetensors,
  writeSafetensors,
  writeSafetensorsSync,
} from './safetensors.js';
export {
  SAFETENSORS_INDEX_FILE,
  readCheckpointIndex,
  readTensorRows,
  tensorBytes,
  writeShardedSafetensors,
} from './safetensors-sharded.js';
export type { CheckpointIndex, CheckpointTensor, WriteShardedOptions } from './safetensors-sharded.js';
export type {
  SafetensorsContents,
  SafetensorsData,
  SafetensorsDType,
  SafetensorsEntry,
  SafetensorsHeader,
  SafetensorsTensor,
  SafetensorsTensorInfo,
} from './safetensors.js';
