// Matrix products: 2-D, batched (with batch broadcasting), with optional transposes.
import { broadcastShapes, numel, sameShape, shapeToString } from '../tensor/shape.js';
import { type Tensor, makeOutput } from '../tensor/tensor.js';
import { broadcastTo, sumToShape } from './broadcast.js';
import { reshape } from './shape.js';
import { autocastLow } from './autocast-cast.js';
import { requireFloat, requireSameBackend } from './util.js';

export interface MatmulOptions {
  /** Use a's last two axes transposed. */
  transA?: boolean;
  /** Use b's last two axes transposed (e.g. x @ W^T with W stored [out, in]). */
  transB?: boolean;
}

/**
 * a [..., m, k] @ b [..., k, n] -> [..., m, n]. Batch axes broadcast. A 2-D b against a
 * batched a runs as one large GEMM over the flattened rows.
 */
export function matmul(aIn: Tensor, bIn: Tensor, options: MatmulOptions = {}): Tensor {
  const [a, b] = [autocastLow(aIn), autocastLow(bIn)]; // on autocast's low-precision list
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  requireSameBackend('matmul', a, b);
  requireFloat(a, 'matmul', 'a');
  requireFloat(b, 'matmul', 'b');
  if (a.dtype !== b.dtype) throw new TypeError(`matmul: b must have dtype ${a.dtype} like a (got ${b.dtype})`);
  if (a.ndim < 2 || b.ndim < 2) {
    throw new RangeError(`matmul: both operands need rank >= 2 (got ${shapeToString(a.shape)} and ${shapeToString(b.shape)})`);
  }
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) {
    throw new RangeError(
      `matmul: inner dimensions differ: a ${shapeToString(a.shape)}${transA ? 'ᵀ' : ''} has k=${k}, b ${shapeToString(b.shape)}${transB ? 'ᵀ' : ''} has k=${kb}`,
    );
  }
  const be = a.backend;
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);

  // rows of a flattened into one GEMM when b is a single matrix
  if (bBatch.length === 0 && !transA) {
    const rows = numel(aBatch) * m;
    const out = be.matmul(a.storage, b.storage, 1, rows, k, n, false, transB, 0, 0);
    return record(a, b, out, [...aBatch, m, n], transA, transB);
  }
  const batchShape = broadcastShapes(aBatch, bBatch, 'matmul');
  const batch = numel(batchShape);
  // an operand whose batch differs from the full batch is either a single matrix (stride 0) or materialised
  const aB = batchOperand(a, aBatch, batchShape);
  const bB = batchOperand(b, bBatch, batchShape);
  const out = be.matmul(aB.t.storage, bB.t.storage, batch, m, k, n, transA, transB, aB.stride, bB.stride);
  return record(a, b, out, [...batchShape, m, n], transA, transB);
}

function batchOperand(x: Tensor, batch: readonly number[], full: readonly number[]): { t: Tensor; stride: number } {
  const mat = x.shape[x.ndim - 2]! * x.shape[x.ndim - 1]!;
  if (sameShape(batch, full)) return { t: x, stride: mat };
  if (numel(batch) === 1) return { t: x, stride: 0 };
  return { t: broadcastTo(x, [...full, ...x.shape.slice(-2)]), stride: mat };
}

function record(a: Tensor, b: Tensor, out: Tensor['storage'], shape: number[], transA: boolean, transB: boolean): Tensor {
  return makeOutput(a.backend, out, shape, {
    name: 'matmul',
    inputs: [a, b],
    backward: (g) => {
      // C = op(A) op(B):  dA = g op(B)ᵀ (transposed back if A was), dB = op(A)ᵀ g (likewise)
      const da = a.requiresGrad ? (transA ? matmul(b, g, { transA: transB, transB: true }) : matmul(g, b, { transB: !transB })) : null;
      if (b.requiresGrad && b.ndim === 2 && a.ndim > 2 && !transA) {
        // the forward ran as one GEMM over flattened rows; so does dB
        const a2 = reshape(a, [-1, a.shape[a.ndim - 1]!]);
        const g2 = reshape(g, [-1, g.shape[g.ndim - 1]!]);
        const db2 = transB ? matmul(g2, a2, { transA: true }) : matmul(a2, g2, { transA: true });
        return [da && sumToShape(da, a.shape), db2];
      }
      const db = b.requiresGrad ? (transB ? matmul(g, a, { transA: true, transB: transA }) : matmul(a, g, { transA: !transA })) : null;
      return [da && sumToShape(da, a.shape), db && sumToShape(db, b.shape)];
    },
  });
}
