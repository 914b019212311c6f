// The MoE block: router + dispatcher + expert bank + shared expert + aux losses + metrics,
// optionally with CT-MoE's collaboration topology (cfg.topology; src/moe/topology/collaboration.ts).
import type { FloatDType } from '../backend/types.js';
import { isGradEnabled } from '../tensor/autograd.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { shapeToString } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { zeros } from '../ops/creation.js';
import { add, mul, sigmoid } from '../ops/elementwise.js';
import { indexSelect } from '../ops/indexing.js';
import { matmul } from '../ops/linalg.js';
import { reshape } from '../ops/shape.js';
import { Module, Parameter } from '../nn/module.js';
import { truncNormal_, uniform_ } from '../nn/init.js';
import { attachAuxLoss } from './aux-loss.js';
import { SelectionBias } from './balancing.js';
import type { MoEConfig } from './config.js';
import type { Dispatcher, ExpertExecutionMetadata, RouterOutput } from './contracts.js';
import { LocalDispatcher } from './dispatch.js';
import { ExpertChoiceDispatcher } from './expert-choice.js';
import { ExpertBank } from './experts.js';
import { tryFusedMoE } from './fused/index.js';
import { fusedRouterState } from './fused/router.js';
import { type FusedAuxGradient, fusedAuxLossTerms, fusedRouterAuxLoss } from './fused/router-aux-loss.js';
import { prepareFusedMoELayer } from './fused/layer.js';
import { LoadBalanceAccumulator, auxLossWeights, loadBalancingLoss, zLoss } from './losses.js';
import { type MoEMetrics, countMetrics, meanRowEntropy } from './metrics.js';
import { route } from './router.js';
import { assertFiniteRouterInput } from './finite-input.js';
import { fullLike } from './tensors.js';
import { Topology } from './topology/topology.js';
import { collaborationCoefficients, topologyRoutingBias, topologySubmatrices } from './topology/collaboration.js';

export interface MoELayerOptions {
  dtype?: FloatDType;
  generator?: Generator;
  /** MoE layers in the model (losses are divided by it when losses.scaleByNumLayers). */
  numLayers?: number;
  /** Swap in another dispatcher (capacity, expert-parallel); default LocalDispatcher (ExpertChoiceDispatcher for router.kind 'expert-choice'). */
  dispatcher?: Dispatcher;
  /** Check that the router input is finite at every forward (a full read of it; default off). */
  checkFiniteInput?: boolean;
}

export interface MoEForwardOptions {
  /** [T] (or x's leading shape) 1 for real tokens, 0 for padding; used by the aux losses. */
  mask?: Tensor | null;
  /** Sequences in the batch, for 'instance' LB granularity (default: x.shape[0] when x is 3-D). */
  batchSize?: number;
}

/** The aux losses of one forward (see MoELayer.auxLosses). */
interface AuxLosses {
  total: Tensor | null;
  lb: number | null;
  z: number | null;
  weights: { lb: number; z: number };
  gradient: FusedAuxGradient | null;
}

export class MoELayer extends Module {
  readonly routerWeight: Parameter;
  readonly routerBias: Parameter | null;
  readonly experts: ExpertBank;
  readonly sharedExpert: ExpertBank | null;
  readonly sharedGate: Parameter | null;
  readonly selectionBias: SelectionBias | null;
  readonly dispatcher: Dispatcher;
  readonly lbAccumulator: LoadBalanceAccumulator | null;
  /** CT-MoE topology (S_raw), or null when cfg.topology is null. */
  readonly topology: Topology | null;
  /** Metrics of the latest forward. */
  lastMetrics: MoEMetrics | null = null;
  private readonly numLayers: number;
  private readonly generator: Generator;
  private readonly checkFiniteInput: boolean;

  constructor(
    readonly cfg: MoEConfig,
    options: MoELayerOptions = {},
  ) {
    super();
    const gen = options.generator ?? defaultGenerator;
    const dtype = options.dtype ?? 'f32';
    const H = cfg.hiddenSize;
    const E = cfg.router.numExperts;
    // OLMo-core router init: trunc_normal(std 0.02, [-0.06, 0.06])
    this.routerWeight = truncNormal_(new Parameter(zeros([E, H], { dtype })), 0, 0.02, -0.06, 0.06, gen);
    this.routerBias = cfg.router.routerBias ? uniform_(new Parameter(zeros([E], { dtype })), -1 / Math.sqrt(H), 1 / Math.sqrt(H), gen) : null;
    this.experts = new ExpertBank(E, H, cfg.experts, { dtype, generator: gen });
    const sh = cfg.shared;
    this.sharedExpert = sh
      ? new ExpertBank(1, H, { ...cfg.experts, kind: 'swiglu', layout: 'separate', orientation: 'out-in', bias: false, intermediateSize: sh.intermediateSize }, { dtype, generator: gen })
      : null;
    this.sharedGate = sh?.gate === 'sigmoid' ? uniform_(new Parameter(zeros([1, H], { dtype })), -1 / Math.sqrt(H), 1 / Math.sqrt(H), gen) : null;
    this.selectionBias = cfg.router.selectionBias ? new SelectionBias(E, cfg.router.selectionBias) : null;
    if (this.selectionBias) this.registerBuffer('scoreBias', this.selectionBias.bias);
    this.dispatcher = options.dispatcher ?? (cfg.router.kind === 'expert-choice' ? new ExpertChoiceDispatcher(E, cfg.dispatch) : new LocalDispatcher(E, cfg.dispatch));
    this.lbAccumulator = cfg.losses.lbGranularity === 'global-batch' ? new LoadBalanceAccumulator(E) : null;
    this.topology = cfg.topology ? new Topology(E, { sTemp: cfg.topology.sTemp, dtype }) : null;
    this.numLayers = options.numLayers ?? 1;
    this.generator = gen;
    this.checkFiniteInput = options.checkFiniteInput ?? false;
  }

  /** [S_raw] when the topology is on (optimise it in its own group: CT-MoE uses lr × 100, no weight decay), else []. */
  topologyParameters(): Parameter[] {
    return this.topology ? [this.topology.sRaw] : [];
  }

  /** x [..., H] -> [..., H]. In training with grad, the scaled aux losses ride on the output. */
  forward(x: Tensor, opts: MoEForwardOptions = {}): Tensor {
    const H = this.cfg.hiddenSize;
    if (x.shape[x.ndim - 1] !== H) throw new RangeError(`MoELayer: input's last axis must be hiddenSize = ${H} (got ${shapeToString(x.shape)})`);
    const x2 = reshape(x, [-1, H]);
    if (this.checkFiniteInput) assertFiniteRouterInput(x2, 'MoELayer');
    const T = x2.shape[0]!;
    const rc = this.cfg.router;
    const mask = opts.mask ? reshape(opts.mask, [T]) : null;
    const wantLosses = this.training && isGradEnabled();
    const batchSize = opts.batchSize ?? (x.ndim === 3 ? x.shape[0]! : 1);
    // the whole block as one fused node where it applies (src/moe/fused/layer.ts), with the aux
    // losses' gradient inside it; else the chain of router, aux-loss and expert nodes below
    const whole = this.topology || (wantLosses && !this.fusedAuxCovers(mask))
      ? null
      : prepareFusedMoELayer({
          x: x2,
          routerWeight: this.routerWeight,
          router: rc,
          selectionBias: this.selectionBias?.bias ?? null,
          training: this.training,
          dispatcher: this.dispatcher,
          bank: this.experts,
        });
    let r: RouterOutput;
    let y: Tensor;
    let droppedSlots: number;
    let losses: AuxLosses | null;
    if (whole) {
      r = whole.routed;
      losses = wantLosses ? this.auxLosses(r, mask, batchSize, true) : null;
      ({ y, droppedSlots } = whole.experts(losses?.gradient ?? null));
    } else {
      const S = this.topology ? this.topology.forward() : null;
      r = this.routeChain(x2, S);
      ({ y, droppedSlots } = this.expertsChain(x2, r, S));
      losses = wantLosses ? this.auxLosses(r, mask, batchSize, false) : null;
    }
    y = this.addShared(x2, y, T);
    if (losses?.total) y = attachAuxLoss(y, losses.total);
    if (this.training && this.selectionBias) this.selectionBias.accumulate(r.counts);

    const counts = r.counts.dataSync() as Int32Array;
    this.lastMetrics = {
      tokensPerExpert: Int32Array.from(counts),
      ...countMetrics(counts),
      routerEntropy: fusedRouterState(r)?.entropy ?? meanRowEntropy(r.scores.dataSync(), T, rc.numExperts),
      droppedFraction: T > 0 ? droppedSlots / (T * rc.topK) : 0,
      lbLoss: losses?.lb ?? null,
      lbLossScaled: losses ? (losses.lb ?? 0) * losses.weights.lb : null,
      zLoss: losses?.z ?? null,
      zLossScaled: losses ? (losses.z ?? 0) * losses.weights.z : null,
    };
    return reshape(y, x.shape);
  }

  /** The router GEMM and routing as their own nodes (with the topology's routing bias when S is given). */
  private routeChain(x2: Tensor, S: Tensor | null): RouterOutput {
    const tc = this.cfg.topology;
    return route(x2, this.routerWeight, this.routerBias, this.cfg.router, {
      training: this.training,
      generator: this.generator,
      selectionBias: this.selectionBias?.bias ?? null,
      logitBias: S && tc?.routingBias ? topologyRoutingBias(S, tc.routingScale) : null,
    });
  }

  /** dispatch -> experts -> combine on routeChain's output: the fused experts node, or the dispatcher and bank (always with a topology). */
  private expertsChain(x2: Tensor, r: RouterOutput, S: Tensor | null): { y: Tensor; droppedSlots: number } {
    const tc = this.cfg.topology;
    // Topology message passing, folded into the combine coefficients (exact, see collaboration.ts):
    // weights on the output -> the dispatcher combines with b = w + c·wᵀS_sub; weights on the
    // input -> each row's output is scaled by b = 1 + c·1ᵀS_sub before an unweighted combine.
    let routing: Pick<typeof r, 'topkIds' | 'topkWeights'> = r;
    let slotScale: Tensor | null = null;
    if (S && tc?.collaboration) {
      const sSub = topologySubmatrices(S, r.topkIds);
      if (this.cfg.dispatch.weightsOn === 'output') routing = { topkIds: r.topkIds, topkWeights: collaborationCoefficients(sSub, r.topkWeights, tc.collabScale) };
      else slotScale = collaborationCoefficients(sSub, fullLike(r.topkWeights, r.topkWeights.shape, 1), tc.collabScale);
    }
    // dispatch -> experts -> combine: one fused native node when it applies (src/moe/fused);
    // with a topology always the reference composition (dispatcher + ExpertBank)
    const fused = this.topology ? null : tryFusedMoE(x2, r, this.dispatcher, this.experts);
    if (fused) return fused;
    const d = this.dispatcher.dispatch(x2, routing);
    let out = this.experts.forward(d.rows, d.exec);
    if (slotScale) out = mul(out, reshape(indexSelect(reshape(slotScale, [slotScale.size]), 0, d.meta.sortedSlots).to(out.dtype), [d.meta.sortedSlots.size, 1]));
    return { y: this.dispatcher.combine(out, d.meta), droppedSlots: d.meta.droppedSlots.length };
  }

  /** Whether the fused aux losses cover this forward's (no mask, no per-sequence LB). */
  private fusedAuxCovers(mask: Tensor | null): boolean {
    return !mask && this.cfg.losses.lbGranularity !== 'instance';
  }

  /** After each optimiser step: update the selection bias from the counts since the last one, reset global-batch LB. */
  postBatch(): void {
    this.selectionBias?.update();
    this.lbAccumulator?.reset();
  }

  private addShared(x2: Tensor, y: Tensor, T: number): Tensor {
    const sh = this.cfg.shared;
    if (!sh || !this.sharedExpert) return y;
    const exec: ExpertExecutionMetadata = {
      numExperts: 1,
      numRows: T,
      segOffsets: Int32Array.of(0, T),
      rowsPerExpert: Int32Array.of(T),
      rowExperts: fullLike(x2, [T], 0, 'i32'),
    };
    let s = this.sharedExpert.forward(x2, exec);
    if (this.sharedGate) s = mul(s, sigmoid(matmul(x2, this.sharedGate, { transB: true })));
    if (sh.mix === 'add') return add(y, s);
    const K = this.cfg.router.topK;
    return add(mul(s, 1 / (K + 1)), mul(y, K / (K + 1)));
  }

  /**
   * The scaled aux losses: their total as a node to attach to the output, or, with inFusedLayer,
   * only their values and the gradient the fused layer's node applies itself (total null).
   */
  private auxLosses(r: RouterOutput, mask: Tensor | null, batchSize: number, inFusedLayer: boolean): AuxLosses {
    const lc = this.cfg.losses;
    const weights = auxLossWeights(lc, this.numLayers);
    const fused = this.fusedAuxCovers(mask) ? fusedRouterState(r) : null;
    if (fused) {
      if (weights.lb > 0) this.lbAccumulator?.addCounts(fused.counts, fused.numTokens);
      const options = { weights, convention: lc.lbConvention, frequencies: this.lbAccumulator?.frequencies() ?? null };
      if (inFusedLayer) {
        const terms = fusedAuxLossTerms(fused, options);
        return { total: null, lb: terms?.lb ?? null, z: terms?.z ?? null, weights, gradient: terms?.gradient(1) ?? null };
      }
      return { ...fusedRouterAuxLoss(fused, options), weights, gradient: null };
    }
    const { scores, topkIds: ids, logits } = r;
    let total: Tensor | null = null;
    let lb: number | null = null;
    let z: number | null = null;
    if (weights.lb > 0) {
      this.lbAccumulator?.add(ids, mask);
      const l = loadBalancingLoss(scores, ids, {
        convention: lc.lbConvention,
        granularity: lc.lbGranularity === 'instance' ? 'instance' : 'local-batch',
        batchSize,
        mask,
        frequencies: this.lbAccumulator?.frequencies() ?? null,
        normalizeScores: this.cfg.router.scoreFunc === 'sigmoid',
      });
      lb = l.item();
      total = mul(l, weights.lb);
    }
    if (weights.z > 0) {
      const l = zLoss(logits, mask);
      z = l.item();
      total = total ? add(total, mul(l, weights.z)) : mul(l, weights.z);
    }
    return { total, lb, z, weights, gradient: null };
  }
}
