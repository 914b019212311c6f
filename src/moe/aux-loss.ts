// Auxiliary losses reach the gradients without the caller threading them through: the loss
// is attached to an activation by an identity op whose backward also seeds the loss with 1
// (OLMo-core's MoEAuxLossAutograd). Scale the loss before attaching it. This is the one way
// MoE aux losses reach a model's loss: MoELayer attaches its scaled LB / z terms (their values
// in lastMetrics), the whole-layer node applies the same gradient inside its backward, the
// parallel plans use the same layer code, and models only differentiate the task
// loss (experiments/ctmoe/model.ts adds the values for its logs). The hierarchy's LossAPI
// (hierarchy/loss.ts) is not a second channel: it composes the objective the caller
// differentiates from the caller's own named terms, and MoELayers inside it attach as here.
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
