// Fused scaled-dot-product attention: q [B, H, Tq, D], k/v [B, H, Tk, D].
import { sameShape, shapeToString } from '../tensor/shape.js';
import { Tensor, makeOutput } from '../tensor/tensor.js';
import { autocastLow } from './autocast-cast.js';
import { requireFloat, requireSameBackend } from './util.js';

export interface AttentionOptions {
  causal?: boolean;
  /** Defaults to 1/sqrt(D). */
  scale?: number;
}

export function scaledDotProductAttention(qIn: Tensor, kIn: Tensor, vIn: Tensor, options: AttentionOptions = {}): Tensor {
  const [q, k, v] = [autocastLow(qIn), autocastLow(kIn), autocastLow(vIn)]; // on autocast's low-precision list
  requireSameBackend('scaledDotProductAttention', q, k, v);
  requireFloat(q, 'scaledDotProductAttention', 'q');
  if (
    q.ndim !== 4 ||
    k.ndim !== 4 ||
    !sameShape(k.shape, v.shape) ||
    q.shape[0] !== k.shape[0] ||
    q.shape[1] !== k.shape[1] ||
    q.shape[3] !== k.shape[3]
  ) {
    throw new RangeError(
      `scaledDotProductAttention: expected q [B, H, Tq, D] and k, v [B, H, Tk, D] (got q ${shapeToString(q.shape)}, k ${shapeToString(k.shape)}, v ${shapeToString(v.shape)})`,
    );
  }
  if (k.dtype !== q.dtype || v.dtype !== q.dtype) throw new TypeError(`scaledDotProductAttention: k and v must have dtype ${q.dtype}`);
  const [B, H, tq, d] = q.shape as [number, number, number, number];
  const tk = k.shape[2]!;
  const causal = options.causal ?? false;
  const scale = options.scale ?? 1 / Math.sqrt(d);
  const b = q.backend;
  const r = b.attention(q.storage, k.storage, v.storage, B * H, tq, tk, d, scale, causal);
  return makeOutput(b, r.out, q.shape, {
    name: 'scaledDotProductAttention',
    inputs: [q, k, v],
    backward: (g) => {
      const gr = b.attentionBackward(q.storage, k.storage, v.storage, r.out, r.lse, g.storage, B * H, tq, tk, d, scale, causal);
      return [new Tensor(gr.dq, q.shape, b), new Tensor(gr.dk, k.shape, b), new Tensor(gr.dv, v.shape, b)];
    },
  });
}
