// Layout kernels as strided copies: permute and slice copy read x through strides, slice add
// writes through them (each target element is written by one invocation: no atomics).
import { contiguousStrides } from '../../types.js';
import type { GpuRuntime, GpuStorage } from '../runtime.js';
import { BROADCAST_OFFSET, WG, broadcastWords, buffers, perElement } from './wgsl.js';

const boxOffset = (strides: readonly number[], starts: readonly number[]) => starts.reduce((o, s, i) => o + s * strides[i]!, 0);

/** out[i] = x[base + offset of i in `shape` under `strides`]. */
function stridedCopy(
  rt: GpuRuntime,
  op: string,
  x: GpuStorage,
  shape: readonly number[],
  strides: readonly number[],
  base: number,
): GpuStorage {
  const n = shape.reduce((p, d) => p * d, 1);
  const out = rt.alloc(x.dtype, n);
  const code = perElement(
    buffers([
      ['x', x.dtype, false],
      ['y', x.dtype, true],
    ]),
    `let rank = pu(1u); y[i] = x[pu(2u) + bcast(i, rank, 3u, 3u + rank)];`,
    BROADCAST_OFFSET,
  );
  rt.run(op, code, [x, out], [n, shape.length, base, ...shape, ...strides], [], Math.ceil(n / WG));
  return out;
}

export function permute(rt: GpuRuntime, x: GpuStorage, shape: readonly number[], perm: readonly number[]): GpuStorage {
  const inStrides = contiguousStrides(shape);
  return stridedCopy(
    rt,
    `permute ([${shape.join(', ')}] by [${perm.join(', ')}])`,
    x,
    perm.map((p) => shape[p]!),
    perm.map((p) => inStrides[p]!),
    0,
  );
}

export function sliceCopy(
  rt: GpuRuntime,
  x: GpuStorage,
  shape: readonly number[],
  starts: readonly number[],
  sizes: readonly number[],
): GpuStorage {
  const strides = contiguousStrides(shape);
  return stridedCopy(
    rt,
    `sliceCopy ([${shape.join(', ')}] at [${starts.join(', ')}] size [${sizes.join(', ')}])`,
    x,
    sizes,
    strides,
    boxOffset(strides, starts),
  );
}

export function sliceAddInPlace(
  rt: GpuRuntime,
  target: GpuStorage,
  shape: readonly number[],
  starts: readonly number[],
  src: GpuStorage,
  srcShape: readonly number[],
): void {
  const strides = contiguousStrides(shape);
  const n = srcShape.reduce((p, d) => p * d, 1);
  const code = perElement(
    buffers([
      ['src', src.dtype, false],
      ['y', target.dtype, true],
    ]),
    `let rank = pu(1u); let o = pu(2u) + bcast(i, rank, 3u, 3u + rank); y[o] = y[o] + ${target.dtype}(src[i]);`,
    BROADCAST_OFFSET,
  );
  const words = [n, srcShape.length, boxOffset(strides, starts), ...broadcastWords(srcShape, [strides]).slice(1)];
  rt.run(
    `sliceAddInPlace ([${shape.join(', ')}] at [${starts.join(', ')}] += [${srcShape.join(', ')}])`,
    code,
    [src, target],
    words,
    [],
    Math.ceil(n / WG),
  );
}
