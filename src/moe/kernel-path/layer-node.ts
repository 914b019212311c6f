// The routed MoE block as ONE autograd node over x, the router weight and the expert weights:
// router GEMM, router pass, slot plan, SwiGLU experts and combine forward; the experts'
// backward, then the router's (routerLayerBackward: the logits' gradient from the combine
// weights' and from the aux losses', the router weight's gradient, and the router's share of dX
// summed with the experts' in one pass). Against the chain of nodes layer.ts builds otherwise
// (router matmul, router pass, aux loss, experts), the backward drops two router passes, a
// dlogits sum, two GEMMs and a dX sum, and the JavaScript between them.
// The execution plan (../execution/plan.ts) decides where it applies; the chain's composition
// is the spec (test/moe-layer-node.test.ts).
import type { MoeKernels } from '../../backend/moe.js';
import type { BF16Array } from '../../backend/types.js';
import type { Tensor } from '../../tensor/tensor.js';
import { noGrad } from '../../tensor/autograd.js';
import { cast } from '../../ops/cast.js';
import { matmul } from '../../ops/linalg.js';
import type { ExpertConfig, RouterConfig } from '../config.js';
import type { RouterOutput, RouterPassState } from '../contracts.js';
import type { LocalDispatcher } from '../dispatch.js';
import type { ExpertWeights } from '../expert-weights.js';
import { autocastKernels } from '../execution/plan.js';
import { expertsNode, f32Values, firstWeights } from './experts-node.js';
import { routerPass } from './router-pass.js';
import type { AuxLossGradient } from './router-aux-loss.js';

export interface LayerNodeInputs {
  /** [T, H] */
  x: Tensor;
  /** [E, H] */
  routerWeight: Tensor;
  router: RouterConfig;
  dispatcher: LocalDispatcher;
  bank: Bank;
}

type Bank = ExpertWeights & { cfg: ExpertConfig; numExperts: number };

export interface LayerNode {
  /** The routing; nothing in it is differentiable (the node from experts() differentiates the router). */
  readonly routed: RouterOutput;
  readonly state: RouterPassState;
  /** dispatch -> experts -> combine; aux: the aux losses' gradient, applied whenever the output's backward runs (as attachAuxLoss seeds it). */
  experts(aux: AuxLossGradient | null): { y: Tensor; droppedSlots: number };
}

/** Routes x with the router pass and returns the node's second half (the aux losses' gradient comes between). */
export function layerNode(k: MoeKernels, inp: LayerNodeInputs): LayerNode {
  const { x, routerWeight: w, router: cfg, dispatcher, bank } = inp;
  const logits = noGrad(() => matmul(x, w, { transB: true }));
  const routed = routerPass(k, logits, cfg);
  const state = routed.pass!;
  return {
    routed,
    state,
    experts: (aux) => {
      const T = x.shape[0]!;
      const K = cfg.topK;
      const topkWeights = routed.topkWeights;
      const plan = k.planRoutes({
        ids: state.ids,
        numTokens: T,
        topK: K,
        numExperts: bank.numExperts,
        capacity: dispatcher.capacity(T, K),
        weights: topkWeights.storage,
      });
      const routing = { numTokens: T, topK: K, plan, topkWeights, router: { state, weight: w, aux } };
      return { y: expertsNode(k, x, routing, bank, bank.cfg), droppedSlots: plan.droppedSlots };
    },
  };
}

/** dispatch -> experts -> combine as one node, on a routing made by the chain (the 'kernels' path). */
export function routedExperts(
  k: MoeKernels,
  x: Tensor,
  routing: Pick<RouterOutput, 'topkIds' | 'topkWeights'>,
  dispatcher: LocalDispatcher,
  bank: Bank,
): { y: Tensor; droppedSlots: number } {
  const { topkIds, topkWeights } = routing;
  const [T, K] = topkIds.shape as [number, number];
  const plan = k.planRoutes({
    ids: topkIds.dataSync() as Int32Array,
    numTokens: T,
    topK: K,
    numExperts: bank.numExperts,
    capacity: dispatcher.capacity(T, K),
    weights: f32Values(x, topkWeights.storage),
  });
  const slots = { numTokens: T, topK: K, plan, topkWeights };
  if (!autocastKernels(k, x.dtype)) return { y: expertsNode(k, x, slots, bank, bank.cfg), droppedSlots: plan.droppedSlots };
  // autocast bf16 over f32 weights (the plan's autocastKernels): x cast to bf16 (differentiably:
  // its gradient comes back in f32), the kernels reading bf16 copies of the weights made for this
  // forward, the weights' gradients the f32 sums of the weight-gradient GEMMs (LowWeights); the
  // output bf16 as the composition's
  const low = (t: Tensor) => x.backend.cast(t.storage, 'bf16') as BF16Array;
  const lw = { first: firstWeights(bank, bank.cfg).map(low), down: low(bank.downProj) };
  const y = expertsNode(k, cast(x, 'bf16'), slots, bank, bank.cfg, lw);
  return { y, droppedSlots: plan.droppedSlots };
}
