// State dicts <-> safetensors entries (write with io's writeSafetensors, read with readSafetensors).
import { type HalfArray, isHalfDType } from '../backend/types.js';
import type { SafetensorsDType, SafetensorsEntry, SafetensorsTensor } from '../io/safetensors.js';
import { fromArray } from '../ops/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import type { StateDict } from './module.js';

const TO_ST: Record<Tensor['dtype'], SafetensorsDType> = { f32: 'F32', f64: 'F64', i32: 'I32', bf16: 'BF16', f16: 'F16' };

/** Tensors as safetensors entries (a copy of each tensor's elements). */
export function stateDictToSafetensors(dict: StateDict): Record<string, SafetensorsTensor> {
  const out: Record<string, SafetensorsTensor> = {};
  for (const [name, t] of Object.entries(dict)) {
    // bf16 / f16 tensors are written as their bit patterns (a copy of the CPU storage)
    const data = isHalfDType(t.dtype) ? (t.storage as HalfArray).slice() : t.dataSync().slice();
    out[name] = { dtype: TO_ST[t.dtype], shape: [...t.shape], data };
  }
  return out;
}

/** Loaded safetensors entries as tensors on the default backend (F16/BF16 arrive widened to f32). */
export function safetensorsToStateDict(tensors: Map<string, SafetensorsEntry> | Record<string, SafetensorsEntry>): StateDict {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const out: StateDict = {};
  for (const [name, e] of entries) {
    if (e.data instanceof Uint8Array || e.data instanceof Int8Array) {
      throw new TypeError(
        `safetensorsToStateDict: tensor '${name}' has dtype ${e.dtype}; tensors hold f32, f64 or i32 (U8/I8 are raw bytes, e.g. MXFP4 blocks)`,
      );
    }
    out[name] = fromArray(e.data, e.shape);
  }
  return out;
}
