// Reference batched matmul: plain loops, accumulating in float64.
import { type Storage, floatArrayLike } from '../types.js';

export function matmul(
  a: Storage,
  b: Storage,
  batch: number,
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
  aBatchStride: number,
  bBatchStride: number,
): Storage {
  const out = floatArrayLike(a, batch * m * n);
  const row = new Float64Array(n);
  for (let bt = 0; bt < batch; bt++) {
    const ao = bt * aBatchStride;
    const bo = bt * bBatchStride;
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let p = 0; p < k; p++) {
        const av = a[ao + (transA ? p * m + i : i * k + p)]!;
        if (transB) {
          for (let j = 0; j < n; j++) row[j]! += av * b[bo + j * k + p]!;
        } else {
          const bRow = bo + p * n;
          for (let j = 0; j < n; j++) row[j]! += av * b[bRow + j]!;
        }
      }
      out.set(row, (bt * m + i) * n);
    }
  }
  return out;
}
