// Auxiliary losses reach the gradients without the caller threading them through: the loss
// is attached to an activation by an identity op whose backward also seeds the loss with 1
// (OLMo-core's MoEAuxLossAutograd). Scale the loss before attaching it.
import { Tensor, makeOutput } from '../tensor/tensor.js';
import { shapeToString } from '../tensor/shape.js';

/** Returns x unchanged; backward passes x's gradient through and adds d(loss) = 1 to the loss. */
export function attachAuxLoss(x: Tensor, loss: Tensor): Tensor {
  if (loss.size !== 1) throw new RangeError(`attachAuxLoss: loss must be a one-element tensor (got shape ${shapeToString(loss.shape)})`);
  if (!loss.requiresGrad) return x;
  const b = x.backend;
  return makeOutput(b, x.storage, x.shape, {
    name: 'attachAuxLoss',
    inputs: [x, loss],
    backward: (g) => [g, new Tensor(loss.backend.full(loss.dtype, 1, 1), loss.shape, loss.backend)],
  });
}
