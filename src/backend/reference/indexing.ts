// Reference index kernels along the middle axis of [outer, n, inner].
import { type Storage, arrayLike } from '../types.js';

function checkIndex(v: number, n: number, op: string): number {
  if (!(v >= 0 && v < n)) throw new RangeError(`${op}: index ${v} is out of range for an axis of size ${n}`);
  return v;
}

export function indexSelect(x: Storage, outer: number, n: number, inner: number, idx: Storage): Storage {
  const m = idx.length;
  const out = arrayLike(x, outer * m * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const src = (o * n + checkIndex(idx[j]!, n, 'indexSelect')) * inner;
      const dst = (o * m + j) * inner;
      for (let i = 0; i < inner; i++) out[dst + i] = x[src + i]!;
    }
  }
  return out;
}

export function indexAddInPlace(target: Storage, outer: number, n: number, inner: number, idx: Storage, src: Storage): void {
  const m = idx.length;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const dst = (o * n + checkIndex(idx[j]!, n, 'indexAdd')) * inner;
      const s = (o * m + j) * inner;
      for (let i = 0; i < inner; i++) target[dst + i]! += src[s + i]!;
    }
  }
}

export function gather(x: Storage, outer: number, n: number, inner: number, idx: Storage, m: number): Storage {
  const out = arrayLike(x, outer * m * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      for (let i = 0; i < inner; i++) {
        const p = (o * m + j) * inner + i;
        out[p] = x[(o * n + checkIndex(idx[p]!, n, 'gather')) * inner + i]!;
      }
    }
  }
  return out;
}

export function scatterAddInPlace(target: Storage, outer: number, n: number, inner: number, idx: Storage, src: Storage, m: number): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      for (let i = 0; i < inner; i++) {
        const p = (o * m + j) * inner + i;
        target[(o * n + checkIndex(idx[p]!, n, 'scatterAdd')) * inner + i]! += src[p]!;
      }
    }
  }
}
