// Module dtypes as configs name them: moekit's short names or PyTorch / OLMo-core's
// ('float32' | 'bfloat16' | 'float16' | 'float64', as OLMo-core's configs take `dtype`).
import type { FloatDType } from '../backend/types.js';

export type TorchDTypeName = 'float32' | 'bfloat16' | 'float16' | 'float64';
export type ModuleDType = FloatDType | TorchDTypeName;

const BY_NAME: Record<ModuleDType, FloatDType> = {
  f32: 'f32',
  f64: 'f64',
  bf16: 'bf16',
  f16: 'f16',
  float32: 'f32',
  float64: 'f64',
  bfloat16: 'bf16',
  float16: 'f16',
};

/** The engine dtype a config's `dtype` names; one-line error naming the field otherwise. */
export function moduleDType(value: unknown, field = 'dtype'): FloatDType {
  const d = typeof value === 'string' ? BY_NAME[value as ModuleDType] : undefined;
  if (!d) throw new TypeError(`${field}: ${JSON.stringify(value)} is not a dtype; allowed: ${Object.keys(BY_NAME).join(', ')}`);
  return d;
}
