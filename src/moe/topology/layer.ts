// The CT-MoE layer (pingBenM/CT-MoE's MoE block; spec/seed-systems.md section 2), on moekit's
// engine. For x [..., D] flattened to T tokens:
//   S       = Topology()                                        [N, N] row-stochastic (absent in Standard MoE)
//   logits  = x Wrᵀ  (+ routing_scale * S.sum(dim=0) if graph routing; column sums, NOT detached)
//   weights = softmax(logits)                                   [T, N]
//   w, idx  = topk(weights, k)                                  NOT renormalised
//   out_k   = gelu(x W1[idx_k]) W2[idx_k]                       [T, k, D]  (W1, W2 [N, D, D], x·W layout)
//   if graph collab:  S_sub[t,i,j] = S[idx_i, idx_j];  S_sub /= rowsum(S_sub) + 1e-9
//                     out = out + collab_scale * S_sub @ out
//   y       = sum_k w_k out_k
// Aux: lb = N * sum_e f_e p_e, f_e = (slots routed to e) / T (sum f = k), p = mean_t weights
// (so lb = k at uniform routing; p includes the routing bias). With k = 2, S_sub renormalises
// to [[0, 1], [1, 0]] whatever S is (the diagonal of S is 0), so message passing then carries
// no information from S and no gradient to it; S matters in message passing only for k >= 3.
import type { FloatDType } from '../../backend/types.js';
import { defaultGenerator, type Generator } from '../../tensor/random.js';
import { shapeToString } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { withAutocast } from '../../amp/autocast.js';
import { toF32IfHalf } from '../../ops/autocast-cast.js';
import { cast } from '../../ops/cast.js';
import { randn } from '../../ops/creation.js';
import { add, gelu, mul } from '../../ops/elementwise.js';
import { indexSelect } from '../../ops/indexing.js';
import { matmul } from '../../ops/linalg.js';
import { mean, sum } from '../../ops/reduce.js';
import { concat, narrow, reshape } from '../../ops/shape.js';
import { softmax } from '../../ops/softmax.js';
import { topk } from '../../ops/sort.js';
import { Module, Parameter } from '../../nn/module.js';
import { Linear } from '../../nn/layers.js';
import { normal_ } from '../../nn/init.js';
import { planSlots } from '../dispatch.js';
import { groupedMatmul } from '../grouped-gemm.js';
import { arrayLike } from '../tensors.js';
import { type CtMoeLayerConfig, ctMoeLayerConfig } from './config.js';
import { routingEntropy } from './diagnostics.js';
import { Topology } from './topology.js';
import { topologySubmatrices } from './collaboration.js';

export interface CtMoeLayerOptions {
  dtype?: FloatDType;
  generator?: Generator;
}

/** What one forward computed, for tests and diagnostics (tensors of the autograd graph). */
export interface CtMoeForwardTrace {
  /** [N, N] S, or null without topology. */
  s: Tensor | null;
  /** [T, N] router logits after the routing bias. */
  logits: Tensor;
  /** [T, N] softmax of the logits. */
  weights: Tensor;
  /** [T, k] selected weights (not renormalised) and i32 ids. */
  topkWeights: Tensor;
  topkIds: Tensor;
  /** [T, k, D] expert outputs of the selected experts, before message passing. */
  expertOut: Tensor;
  /** [T, k, k] renormalised S sub-matrices, or null without message passing. */
  sSub: Tensor | null;
  /** [T, k, D] after message passing (expertOut when there is none). */
  mixedOut: Tensor;
  /** [N] slots routed to each expert. */
  counts: Int32Array;
}

export class CtMoeLayer extends Module {
  readonly cfg: Readonly<CtMoeLayerConfig>;
  /** Linear(D -> N, no bias), init N(0, 0.02) (the seed's GPT init reaches it). */
  readonly router: Linear;
  /** Expert weights [N, D, D], init randn / sqrt(D): out_e = gelu(x W1[e]) W2[e]. */
  readonly w1: Parameter;
  readonly w2: Parameter;
  /** null in a Standard MoE. */
  readonly topology: Topology | null;
  /** Slots routed to each expert while training (the seed's usage buffer); reset by whoever reads it. */
  readonly usage: Float64Array;
  /** The LB loss of the latest forward (one element, differentiable), for the model to add to the task loss. */
  lastAux: Tensor | null = null;
  /** The latest forward's intermediate tensors (kept only when `keepTrace` is set). */
  lastTrace: CtMoeForwardTrace | null = null;
  keepTrace = false;

  constructor(config: Partial<CtMoeLayerConfig> & { dModel: number }, options: CtMoeLayerOptions = {}) {
    super();
    const cfg = ctMoeLayerConfig(config);
    this.cfg = Object.freeze(cfg);
    const gen = options.generator ?? defaultGenerator;
    const dtype = options.dtype ?? 'f32';
    const { dModel: D, numExperts: N } = cfg;
    this.router = new Linear(D, N, { bias: false, dtype, generator: gen });
    normal_(this.router.weight, 0, 0.02, gen);
    const scale = 1 / Math.sqrt(D);
    this.w1 = new Parameter(mul(randn([N, D, D], { dtype, generator: gen }), scale));
    this.w2 = new Parameter(mul(randn([N, D, D], { dtype, generator: gen }), scale));
    this.topology = cfg.useTopology ? new Topology(N, { sTemp: cfg.sTemp, dtype }) : null;
    this.usage = new Float64Array(N);
  }

  /** The current S [N, N] (differentiable), or null in a Standard MoE. */
  s(): Tensor | null {
    return this.topology ? this.topology.forward() : null;
  }

  /** x [..., D] -> [..., D]; the LB loss is left in `lastAux`. */
  forward(x: Tensor): Tensor {
    const { dModel: D, numExperts: N, topK: K } = this.cfg;
    if (x.shape[x.ndim - 1] !== D)
      throw new RangeError(`CtMoeLayer: input's last axis must be dModel = ${D} (got ${shapeToString(x.shape)})`);
    const x2 = reshape(x, [-1, D]);
    const T = x2.shape[0]!;
    const S = this.s();

    // routing in f32 whatever the layer's dtype or autocast, as the seed routes in fp32
    let logits = withAutocast(null, () => matmul(toF32IfHalf(x2), toF32IfHalf(this.router.weight), { transB: true }));
    if (S && this.cfg.useGraphRouting) logits = add(logits, mul(sum(S, 0), this.cfg.routingScale));
    const weights = softmax(logits, -1);
    const { values: topkWeights, indices: topkIds } = topk(weights, K, -1);
    const ids = topkIds.dataSync();

    const counts = new Int32Array(N);
    for (let i = 0; i < ids.length; i++) counts[ids[i]!]!++;
    if (this.training) for (let e = 0; e < N; e++) this.usage[e]! += counts[e]!;

    const expertOut = reshape(this.cfg.expertCompute === 'dense' ? this.expertsDense(x2, ids) : this.expertsSparse(x2, ids), [T, K, D]);

    let sSub: Tensor | null = null;
    let mixedOut = expertOut;
    if (S && this.cfg.useGraphCollab) {
      sSub = topologySubmatrices(S, topkIds);
      mixedOut = add(expertOut, mul(matmul(cast(sSub, expertOut.dtype), expertOut), this.cfg.collabScale));
    }
    const y = reshape(matmul(cast(reshape(topkWeights, [T, 1, K]), mixedOut.dtype), mixedOut), [T, D]);

    // LB loss: f (constant) . p (differentiable through the router and the routing bias)
    const f = new Float64Array(N);
    for (let e = 0; e < N; e++) f[e] = counts[e]! / T;
    const fT = arrayLike(x2, x2.dtype === 'f64' ? f : Float32Array.from(f), [N]);
    this.lastAux = mul(sum(mul(fT, mean(weights, 0))), N);

    this.lastTrace = this.keepTrace ? { s: S, logits, weights, topkWeights, topkIds, expertOut, sSub, mixedOut, counts } : null;
    return reshape(y, x.shape);
  }

  /** Only the selected experts: stable sort of the T·k slots, grouped GEMMs, back to slot order. [T·k, D]. */
  private expertsSparse(x2: Tensor, ids: ArrayLike<number>): Tensor {
    const { numExperts: N, topK: K } = this.cfg;
    const plan = planSlots(ids, N, null);
    const Sn = plan.sortedSlots.length;
    const rowTokens = new Int32Array(Sn);
    const slotRow = new Int32Array(Sn);
    for (let r = 0; r < Sn; r++) {
      const slot = plan.sortedSlots[r]!;
      rowTokens[r] = Math.floor(slot / K);
      slotRow[slot] = r;
    }
    const rows = indexSelect(x2, 0, arrayLike(x2, rowTokens));
    const h = gelu(groupedMatmul(rows, this.w1, plan.segOffsets, { transB: false }));
    const out = groupedMatmul(h, this.w2, plan.segOffsets, { transB: false });
    return indexSelect(out, 0, arrayLike(x2, slotRow));
  }

  /** Every expert on every token, then the selected ones gathered (the seed's way). [T·k, D]. */
  private expertsDense(x2: Tensor, ids: ArrayLike<number>): Tensor {
    const { numExperts: N, topK: K, dModel: D } = this.cfg;
    const T = x2.shape[0]!;
    const all: Tensor[] = [];
    for (let e = 0; e < N; e++) {
      const w1 = reshape(narrow(this.w1, 0, e, 1), [D, D]);
      const w2 = reshape(narrow(this.w2, 0, e, 1), [D, D]);
      all.push(matmul(gelu(matmul(x2, w1)), w2));
    }
    const stacked = concat(all, 0); // [N*T, D], expert-major
    const idx = new Int32Array(T * K);
    for (let s = 0; s < T * K; s++) idx[s] = ids[s]! * T + Math.floor(s / K);
    return indexSelect(stacked, 0, arrayLike(x2, idx));
  }

  /** Routing entropy of the usage since the last reset, then reset (the seed's get_routing_entropy). */
  takeRoutingEntropy(): number {
    const h = routingEntropy(this.usage);
    this.usage.fill(0);
    return h;
  }
}

/** Sum of lb_weight * lb over the layers' latest forwards, / n_layers (the seed's total-loss term). */
export function ctMoeAuxLoss(layers: readonly CtMoeLayer[], lbWeight: number): Tensor | null {
  let total: Tensor | null = null;
  for (const l of layers) {
    if (!l.lastAux) continue;
    total = total ? add(total, l.lastAux) : l.lastAux;
  }
  return total && layers.length > 0 ? mul(total, lbWeight / layers.length) : null;
}
