// Shape arithmetic: element counts, broadcasting, axis normalisation.

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeToString(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function checkShape(shape: Shape, op: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new RangeError(`${op}: shape ${shapeToString(shape)} must hold non-negative integers (got ${d})`);
    }
  }
}

/** NumPy broadcasting of two shapes; the error names the op and both shapes. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(
        `${op}: shapes ${shapeToString(a)} and ${shapeToString(b)} cannot be broadcast together (axis ${i - rank}: ${da} vs ${db})`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides (in elements) that read a contiguous tensor of `shape` as if it had `outShape`. */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const strides = new Array<number>(outShape.length).fill(0);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const j = outShape.length - shape.length + i;
    strides[j] = shape[i] === 1 ? 0 : acc;
    acc *= shape[i]!;
  }
  return strides;
}

/** Resolve a possibly negative axis against a rank; the error names the op. */
export function normalizeAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= Math.max(rank, 1)) {
    throw new RangeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank} (allowed ${-rank}..${rank - 1})`);
  }
  return a;
}

/** View `shape` as [outer, n, inner] around `axis`. */
export function splitAtAxis(shape: Shape, axis: number): { outer: number; n: number; inner: number } {
  return {
    outer: numel(shape.slice(0, axis)),
    n: shape[axis] ?? 1,
    inner: numel(shape.slice(axis + 1)),
  };
}
