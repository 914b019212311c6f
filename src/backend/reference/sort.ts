// Reference top-k and stable argsort over rows.
import { type Storage, arrayLike } from '../types.js';

/** Stable order of one row: by value (NaN counts as the largest), ties by index. */
function rowOrder(x: Storage, off: number, n: number, descending: boolean): number[] {
  const ids = Array.from({ length: n }, (_, j) => j);
  const key = (j: number) => {
    const v = x[off + j]!;
    return Number.isNaN(v) ? Infinity : v;
  };
  ids.sort((p, q) => {
    const d = descending ? key(q) - key(p) : key(p) - key(q);
    return d !== 0 && !Number.isNaN(d) ? d : p - q;
  });
  return ids;
}

export function argsort(x: Storage, rows: number, n: number, descending: boolean): Storage {
  const out = new Int32Array(rows * n);
  for (let r = 0; r < rows; r++) out.set(rowOrder(x, r * n, n, descending), r * n);
  return out;
}

export function topk(x: Storage, rows: number, n: number, k: number, largest: boolean): { values: Storage; indices: Storage } {
  const values = arrayLike(x, rows * k);
  const indices = new Int32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const order = rowOrder(x, r * n, n, largest);
    for (let j = 0; j < k; j++) {
      indices[r * k + j] = order[j]!;
      values[r * k + j] = x[r * n + order[j]!]!;
    }
  }
  return { values, indices };
}
