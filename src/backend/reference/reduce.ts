// Reference reductions and scans along the middle axis of [outer, n, inner].
import type { ReduceOp } from '../backend.js';
import { type Storage, arrayLike as sameKind } from '../types.js';

export function reduce(op: ReduceOp, x: Storage, outer: number, n: number, inner: number): Storage {
  const out = sameKind(x, outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let acc: number;
      if (op === 'sum') {
        acc = 0;
        for (let j = 0; j < n; j++) acc += x[base + j * inner]!;
      } else if (op === 'max') {
        acc = -Infinity;
        for (let j = 0; j < n; j++) {
          const v = x[base + j * inner]!;
          if (v > acc || Number.isNaN(v)) acc = v;
        }
      } else if (op === 'min') {
        acc = Infinity;
        for (let j = 0; j < n; j++) {
          const v = x[base + j * inner]!;
          if (v < acc || Number.isNaN(v)) acc = v;
        }
      } else {
        let m = -Infinity;
        for (let j = 0; j < n; j++) m = Math.max(m, x[base + j * inner]!);
        if (m === -Infinity || m === Infinity) {
          acc = m; // PyTorch: all -inf gives -inf, any +inf gives +inf (not inf - inf = NaN)
        } else {
          let s = 0;
          for (let j = 0; j < n; j++) s += Math.exp(x[base + j * inner]! - m);
          acc = m + Math.log(s);
        }
      }
      out[o * inner + i] = acc;
    }
  }
  return out;
}

export function argReduce(op: 'argmax' | 'argmin', x: Storage, outer: number, n: number, inner: number): Storage {
  const out = new Int32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let best = 0;
      let bestV = x[base]!;
      for (let j = 1; j < n; j++) {
        const v = x[base + j * inner]!;
        if (op === 'argmax' ? v > bestV : v < bestV) {
          best = j;
          bestV = v;
        }
      }
      out[o * inner + i] = best;
    }
  }
  return out;
}

export function cumsum(x: Storage, outer: number, n: number, inner: number, reverse: boolean): Storage {
  const out = sameKind(x, x.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let acc = 0;
      for (let t = 0; t < n; t++) {
        const j = reverse ? n - 1 - t : t;
        acc += x[base + j * inner]!;
        out[base + j * inner] = acc;
      }
    }
  }
  return out;
}
