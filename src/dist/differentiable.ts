// Collectives as autograd nodes (they run synchronously: backward is synchronous).
//
// The rule for all-reduce (Megatron-LM's f / g pair): a parallel region starts where every rank
// holds the same value and ends where the ranks' partial results are summed.
//   reduceFromRegion (g): forward all-reduce(sum); backward identity — after it every rank holds
//     the same replicated value and computes the same loss, which counts once, so each partial
//     receives the loss's gradient unchanged.
//   copyToRegion (f): forward identity; backward all-reduce(sum) — each rank used the replicated
//     input for its own part only, so the input's gradient is the sum of the ranks' parts.
// Every rank must run the same sequence of these nodes, forward and backward.
import { Tensor, makeOutput } from '../tensor/tensor.js';
import type { Communicator } from './communicator.js';

/** Differentiable allToAllV: the backward sends the gradient rows back (the reverse allToAllV). */
export function allToAllV(comm: Communicator, x: Tensor, sendSplits: ArrayLike<number>, recvSplits: ArrayLike<number>): Tensor {
  const y = comm.allToAllVSync(x, sendSplits, recvSplits);
  return makeOutput(y.backend, y.storage, y.shape, {
    name: 'allToAllV',
    inputs: [x],
    backward: (g) => [comm.allToAllVSync(g, recvSplits, sendSplits)],
  });
}

/** g: the sum of the ranks' partial tensors; backward identity (see above). */
export function reduceFromRegion(comm: Communicator, x: Tensor): Tensor {
  const y = comm.allReduceSync(x, 'sum');
  return makeOutput(y.backend, y.storage, y.shape, { name: 'reduceFromRegion', inputs: [x], backward: (g) => [g] });
}

/** f: identity forward; backward sums the gradient over the ranks (see above). */
export function copyToRegion(comm: Communicator, x: Tensor): Tensor {
  return makeOutput(x.backend, x.storage, x.shape, {
    name: 'copyToRegion',
    inputs: [x],
    backward: (g) => [comm.allReduceSync(g, 'sum')],
  });
}

/**
 * Sum (or average) the gradients of parameters over the ranks, in flat buckets of at most
 * bucketElements per dtype, in the same order on every rank (a parameter without a gradient
 * contributes zeros). Synchronous: training steps are. Collective.
 */
export function allReduceGradients(comm: Communicator, params: readonly Tensor[], op: 'sum' | 'avg', bucketElements = 1 << 22): void {
  if (comm.size === 1) return;
  for (const dtype of ['f32', 'f64'] as const) {
    const group = params.filter((p) => p.dtype === dtype);
    for (let start = 0; start < group.length; ) {
      let end = start;
      let n = 0;
      while (end < group.length && (end === start || n + group[end]!.size <= bucketElements)) n += group[end++]!.size;
      const flat = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
      let o = 0;
      for (const p of group.slice(start, end)) {
        if (p.grad) flat.set(p.grad.dataSync() as Float32Array, o);
        o += p.size;
      }
      const b = group[start]!.backend;
      const reduced = comm.allReduceSync(new Tensor(b.fromArray(flat), [n], b), op).dataSync() as Float32Array;
      o = 0;
      for (const p of group.slice(start, end)) {
        p.grad = new Tensor(b.fromArray(reduced.slice(o, o + p.size)), p.shape, b);
        o += p.size;
      }
      start = end;
    }
  }
}
