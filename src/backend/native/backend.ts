// The native backend: kernels from the C addon where it has them, the reference kernels
// for the rest (each native kernel is held to its reference twin by the op test suite).
import type { Backend } from '../backend.js';
import { referenceBackend } from '../reference/index.js';
import type { Storage } from '../types.js';
import { loadNativeAddon, type NativeAddon } from './addon.js';

function floatOut(like: Storage, n: number): Float32Array | Float64Array {
  return like instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
}

function nativeKernels(addon: NativeAddon): Partial<Backend> {
  return {
    matmul(a, b, batch, m, k, n, transA, transB, aBatchStride, bBatchStride) {
      if (a instanceof Int32Array || b instanceof Int32Array) {
        return referenceBackend.matmul(a, b, batch, m, k, n, transA, transB, aBatchStride, bBatchStride);
      }
      const out = floatOut(a, batch * m * n);
      addon.matmul(a, b, out, batch, m, k, n, transA, transB, aBatchStride, bBatchStride, false);
      return out;
    },
  };
}

export function createNativeBackend():
  | { backend: Backend; description: string; addon: NativeAddon }
  | { backend: null; reason: string } {
  const loaded = loadNativeAddon();
  if (!loaded.addon) return { backend: null, reason: loaded.reason };
  const addon = loaded.addon;
  const info = addon.cpuInfo();
  const backend: Backend = { ...referenceBackend, ...nativeKernels(addon), name: 'native' };
  return { backend, description: `${info.isa}, ${info.threads} threads`, addon };
}
