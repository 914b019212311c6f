// An opt-in check that a MoE layer's router input is finite (MoELayerOptions.checkFiniteInput).
// One NaN token makes every router-weight gradient NaN (the router GEMM's weight gradient
// sums over all tokens), so the error points at the token and feature instead. A full read of
// the input: off by default, for jobs that prefer a clear stop to a silent NaN.
import type { Tensor } from '../tensor/tensor.js';

export class NonFiniteInputError extends RangeError {
  override name = 'NonFiniteInputError';
}

/** Throws when x [T, H] holds a NaN or an infinity, naming the first one's token and feature. */
export function assertFiniteRouterInput(x: Tensor, where: string): void {
  const d = x.dataSync();
  for (let i = 0; i < d.length; i++) {
    if (Number.isFinite(d[i]!)) continue;
    const H = x.shape[x.ndim - 1]!;
    throw new NonFiniteInputError(
      `${where}: router input of token ${Math.floor(i / H)}, feature ${i % H} is ${d[i]} ` +
        `(the layer before produced it; a non-finite token makes every router-weight gradient NaN)`,
    );
  }
}
