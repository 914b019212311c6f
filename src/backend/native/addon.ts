// PLACEHOLDER until the native addon loader lands (helper-1 overwrites this file).
export interface NativeAddon {
  matmul(a: Float32Array | Float64Array, b: Float32Array | Float64Array, out: Float32Array | Float64Array, batch: number, m: number, k: number, n: number, transA: boolean, transB: boolean, aBatchStride: number, bBatchStride: number, accumulate: boolean): void;
  cpuInfo(): { isa: string; threads: number };
}
export function loadNativeAddon(): { addon: NativeAddon } | { addon: null; reason: string } {
  return { addon: null, reason: 'not built yet' };
}
