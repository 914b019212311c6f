// The routed MoE block as ONE autograd node over x, the router weight and the expert weights:
// router GEMM, fused router (router.ts), slot plan, SwiGLU experts and combine forward; the
// experts' backward, then the router's (routerLayerBackward: the logits' gradient from the
// combine weights' and from the aux losses', the router weight's gradient, and the router's
// share of dX summed with the experts' in one pass). Against the chain of nodes layer.ts builds
// otherwise (router matmul, router, aux loss, experts), the backward drops two router passes,
// a dlogits sum, two GEMMs and a dX sum, and the JavaScript between them.
// Covers what each fused piece covers (so no selection bias), without router bias or jitter; layer.ts falls back to
// the chain (whose composition test/moe-fused-layer.test.ts holds this node to) elsewhere.
import type { Tensor } from '../../tensor/tensor.js';
import { noGrad } from '../../tensor/autograd.js';
import { matmul } from '../../ops/linalg.js';
import type { RouterConfig } from '../config.js';
import type { Dispatcher, RouterOutput } from '../contracts.js';
import type { ExpertBank } from '../experts.js';
import { fusedSwigluExperts } from './fused-experts.js';
import { fusedDispatch } from './index.js';
import type { FloatArray } from './native-moe.js';
import { planRoutes } from './route-plan.js';
import { type FusedRouterState, fusedRouteLogits, fusedRouterKernels, fusedRouterState } from './router.js';
import type { FusedAuxGradient } from './router-aux-loss.js';

export interface FusedLayerInputs {
  /** [T, H] */
  x: Tensor;
  /** [E, H] */
  routerWeight: Tensor;
  router: RouterConfig;
  /** The aux-loss-free balancing bias added to the scores for selection (not covered), or null. */
  selectionBias: Tensor | null;
  /** In training the router's jitter (not covered) would apply. */
  training: boolean;
  dispatcher: Dispatcher;
  bank: ExpertBank;
}

export interface FusedMoELayer {
  /** The routing; nothing in it is differentiable (the node from experts() differentiates the router). */
  readonly routed: RouterOutput;
  readonly state: FusedRouterState;
  /** dispatch -> experts -> combine; aux: the aux losses' gradient, applied whenever the output's backward runs (as attachAuxLoss seeds it). */
  experts(aux: FusedAuxGradient | null): { y: Tensor; droppedSlots: number };
}

/**
 * Routes x on the fused path and returns the node's second half, or null when the block is not
 * covered (or MOEKIT_MOE_FUSED_LAYER=0: the chain of fused nodes instead, for A/B runs).
 */
export function prepareFusedMoELayer(inp: FusedLayerInputs): FusedMoELayer | null {
  const { x, routerWeight: w, router: cfg, dispatcher, bank } = inp;
  if (process.env.MOEKIT_MOE_FUSED_LAYER === '0' || cfg.routerBias || (inp.training && cfg.jitterEps > 0)) return null;
  if (x.ndim !== 2 || w.ndim !== 2 || w.shape[0] !== cfg.numExperts || w.shape[1] !== x.shape[1]) return null;
  const fused = fusedRouterKernels(x, cfg, inp.selectionBias) && fusedDispatch(x, dispatcher, bank, [w]);
  if (!fused) return null;
  const { k, local } = fused;
  const logits = noGrad(() => matmul(x, w, { transB: true }));
  const routed = fusedRouteLogits(logits, cfg, null);
  const state = routed && fusedRouterState(routed);
  if (!routed || !state) return null;
  return {
    routed,
    state,
    experts: (aux) => {
      const T = x.shape[0]!;
      const K = cfg.topK;
      const topkWeights = routed.topkWeights;
      const plan = planRoutes(k, state.ids, T, K, bank.numExperts, local.capacity(T, K), topkWeights.storage as FloatArray);
      const routing = { numTokens: T, topK: K, plan, topkWeights, router: { state, weight: w, aux } };
      return { y: fusedSwigluExperts(k, x, routing, bank, bank.cfg), droppedSlots: plan.droppedSlots };
    },
  };
}
