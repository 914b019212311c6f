// The MoE block: router + dispatcher + expert bank + shared expert + aux losses + metrics,
// optionally with CT-MoE's collaboration topology (cfg.topology; src/moe/topology/collaboration.ts).
// How it executes is its plan's (execution/plan.ts), across ranks too (parallelize: the
// 'parallel' path, execution/parallel.ts).
import { type ModuleDType, moduleDType } from '../nn/dtype-names.js';
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
import { type ActivationFacts, ExpertBank } from './experts.js';
import type { MoeKernels } from '../backend/moe.js';
import {
  type ExecutionPlan,
  type PlanInputs,
  bankTensors,
  defaultDispatcher,
  layerCall,
  planKey,
  planLayer,
  routerKernelLossesCover,
  together,
} from './execution/plan.js';
import type { ParallelExecution, ParallelSteps } from './execution/parallel.js';
import { layerNode, routedExperts } from './kernel-path/layer-node.js';
import { type AuxLossGradient, routerPassAuxLoss, routerPassAuxTerms } from './kernel-path/router-aux-loss.js';
import { LoadBalanceAccumulator, auxLossWeights, loadBalancingLoss, zLoss } from './losses.js';
import { type MoEMetrics, countMetrics, meanRowEntropy } from './metrics.js';
import { route } from './router.js';
import { assertFiniteRouterInput } from './finite-input.js';
import type { RoutingHook } from './routing/hook.js';
import { arrayLike, fullLike } from './tensors.js';
import { Topology } from './topology/topology.js';
import { ctMoeRouterWeight } from './topology/init.js';
import { collaborationCoefficients, topologyRoutingBias, topologySubmatrices } from './topology/collaboration.js';
import type { DeviceMoeKernels } from '../backend/moe.js';
import { loadBalancingLossFromCounts } from './device/losses.js';
import { DeviceLoadBalanceAccumulator, deviceLoadBalancingLoss, deviceZLoss } from './device/balancing.js';
import { type PendingMetrics, readPendingMetrics } from './device/metrics.js';
import { deviceRoutedExperts } from './device/routed-experts.js';
import { type Reads, read } from '../tensor/reads.js';

export interface MoELayerOptions {
  /** The weights' dtype: 'f32' (default), 'f64', 'bf16', 'f16', or OLMo-core's 'float32' | 'bfloat16' | 'float16'. */
  dtype?: ModuleDType;
  generator?: Generator;
  /** MoE layers in the model (losses are divided by it when losses.scaleByNumLayers). */
  numLayers?: number;
  /** Swap in another dispatcher (capacity, expert-parallel); default LocalDispatcher (ExpertChoiceDispatcher for router.kind 'expert-choice'). */
  dispatcher?: Dispatcher;
  /** Check that the router input is finite at every forward (a full read of it; default off). */
  checkFiniteInput?: boolean;
  /**
   * 'olmo-core' (default): router trunc_normal(0.02, ±0.06), experts U(±1/sqrt(fan_in)).
   * 'ct-moe': the CT-MoE seed's (router N(0, 0.02), experts randn / sqrt(fan_in); topology/init.ts).
   */
  init?: 'olmo-core' | 'ct-moe';
  /**
   * Hold only experts [first, first + count) (expert / tensor parallelism: such a layer runs only
   * under a parallel plan, MoELayer.parallelize / src/dist's blocks). Their weights equal the
   * whole layer's at the same seed.
   */
  expertShard?: ExpertShard;
}

/** A contiguous range of a layer's experts (MoELayerOptions.expertShard). */
export interface ExpertShard {
  first: number;
  count: number;
}

export interface MoEForwardOptions {
  /** [T] (or x's leading shape) 1 for real tokens, 0 for padding; used by the aux losses. */
  mask?: Tensor | null;
  /** Sequences in the batch, for 'instance' LB granularity (default: x.shape[0] when x is 3-D). */
  batchSize?: number;
}

export interface MoEForwardDetailsOptions extends MoEForwardOptions {
  /** Also count per-expert activation facts (GPT-OSS clamps): a read of the pre-activations, so only when asked. */
  activationFacts?: boolean;
}

/** What MoELayer.forwardWithRouting hands out beside the output. */
export interface MoEForwardDetails {
  /** forward's output (with the aux losses riding on it in training). */
  y: Tensor;
  /** The router's output: logits, scores, top-k ids and weights, counts (on the layer-node path none of it is differentiable). */
  routing: RouterOutput;
  /** The routed experts' combined output, before the shared expert is mixed in, [..., H]. */
  routed: Tensor;
  /** The shared expert's (gated) output, [..., H], or null without one. */
  shared: Tensor | null;
  /** Slots over their expert's capacity (NaN on the 'device' path: `await layer.readMetrics()`). */
  droppedSlots: number;
  /** null on the 'device' path (`await layer.readMetrics()`). */
  metrics: MoEMetrics | null;
  /** With activationFacts on a 'gpt-oss' bank: per-expert clamp counts; else null. */
  activationFacts: ActivationFacts | null;
}

/** The aux losses of one forward (see MoELayer.auxLosses). */
interface AuxLosses {
  total: Tensor | null;
  lb: number | null;
  z: number | null;
  weights: { lb: number; z: number };
  gradient: AuxLossGradient | null;
  /** On the 'device' path: the unscaled losses as tensors, read when metrics are (lb / z stay null). */
  pending?: { lb: Tensor | null; z: Tensor | null };
}

export class MoELayer extends Module {
  readonly routerWeight: Parameter;
  readonly routerBias: Parameter | null;
  readonly experts: ExpertBank;
  /** The experts this layer holds when it holds a part of them (MoELayerOptions.expertShard), else null. */
  readonly expertShard: ExpertShard | null;
  readonly sharedExpert: ExpertBank | null;
  readonly sharedGate: Parameter | null;
  readonly selectionBias: SelectionBias | null;
  readonly dispatcher: Dispatcher;
  readonly lbAccumulator: LoadBalanceAccumulator | null;
  /** Global-batch LB's counts on the 'device' path (lbAccumulator stays empty there). */
  private deviceLbAccumulator: DeviceLoadBalanceAccumulator | null = null;
  /** CT-MoE topology (S_raw), or null when cfg.topology is null. */
  readonly topology: Topology | null;
  /** Metrics of the latest forward (null on the 'device' path: `await readMetrics()`). */
  lastMetrics: MoEMetrics | null = null;
  /** On the 'device' path: what the latest forward's metrics are read from. */
  private pendingMetrics: PendingMetrics | null = null;
  /** [E] slots routed to each expert by the forwards in training mode (grad or not) since whoever reads it last zeroed it (CT-MoE's usage buffer; on the 'device' path after `settleUsage`). */
  readonly usage: Float64Array;
  /** On the 'device' path: [E] i32 counts of the training forwards not yet added to `usage`. */
  private pendingUsage: Tensor | null = null;
  /** Whether this layer has said that a forward dropped every slot (said once). */
  private saidAllDropped = false;
  /** A routing recorder or replay (src/moe/routing/); while set, the layer runs router and experts as separate steps (never the whole-layer node). */
  routingHook: RoutingHook | null = null;
  private readonly numLayers: number;
  private readonly generator: Generator;
  private readonly checkFiniteInput: boolean;
  private plan: ExecutionPlan;
  /** The parallel execution this layer runs under (parallelize), or null: one process. */
  private parallel: ParallelExecution | null = null;

  constructor(
    readonly cfg: MoEConfig,
    options: MoELayerOptions = {},
  ) {
    super();
    const gen = options.generator ?? defaultGenerator;
    const dtype = moduleDType(options.dtype ?? 'f32', 'MoELayer dtype');
    const H = cfg.hiddenSize;
    const E = cfg.router.numExperts;
    const ctMoeInit = options.init === 'ct-moe';
    // OLMo-core router init: trunc_normal(std 0.02, [-0.06, 0.06])
    this.routerWeight = ctMoeInit
      ? ctMoeRouterWeight(E, H, dtype, gen)
      : truncNormal_(new Parameter(zeros([E, H], { dtype })), 0, 0.02, -0.06, 0.06, gen);
    this.routerBias = cfg.router.routerBias
      ? uniform_(new Parameter(zeros([E], { dtype })), -1 / Math.sqrt(H), 1 / Math.sqrt(H), gen)
      : null;
    const shard = options.expertShard;
    this.expertShard = shard ? { first: shard.first, count: shard.count } : null;
    this.experts = new ExpertBank(shard?.count ?? E, H, cfg.experts, {
      dtype,
      generator: gen,
      init: ctMoeInit ? 'normal' : 'uniform',
      ...(shard ? { shard: { first: shard.first, total: E } } : {}),
    });
    const sh = cfg.shared;
    this.sharedExpert = sh
      ? new ExpertBank(
          1,
          H,
          { ...cfg.experts, kind: 'swiglu', layout: 'separate', orientation: 'out-in', bias: false, intermediateSize: sh.intermediateSize },
          { dtype, generator: gen },
        )
      : null;
    this.sharedGate =
      sh?.gate === 'sigmoid' ? uniform_(new Parameter(zeros([1, H], { dtype })), -1 / Math.sqrt(H), 1 / Math.sqrt(H), gen) : null;
    this.selectionBias = cfg.router.selectionBias ? new SelectionBias(E, cfg.router.selectionBias) : null;
    if (this.selectionBias) this.registerBuffer('scoreBias', this.selectionBias.bias);
    this.dispatcher = options.dispatcher ?? defaultDispatcher(cfg);
    this.lbAccumulator = cfg.losses.lbGranularity === 'global-batch' ? new LoadBalanceAccumulator(E) : null;
    this.topology = cfg.topology ? new Topology(E, { sTemp: cfg.topology.sTemp, dtype }) : null;
    this.usage = new Float64Array(E);
    this.numLayers = options.numLayers ?? 1;
    this.generator = gen;
    this.checkFiniteInput = options.checkFiniteInput ?? false;
    this.plan = planLayer(this.planParts());
  }

  /** How this layer executes and why (planned when built; again when its backend, dtype or MOEKIT_MOE_PATH changes). */
  get executionPlan(): ExecutionPlan {
    return this.planFor(this.planParts());
  }

  /**
   * Run across ranks under `par` (the execution plan's 'parallel' path; src/dist's blocks build
   * it over a communicator), or again in one process (null). Plans at once: a configuration the
   * parallel plan refuses is a one-line error and leaves the layer as it was.
   */
  parallelize(par: ParallelExecution | null): void {
    if (par === this.parallel) return;
    const plan = planLayer(this.planParts(par));
    this.parallel = par;
    this.plan = plan;
  }

  private planFor(parts: PlanInputs): ExecutionPlan {
    if (this.plan.key !== planKey(parts)) this.plan = planLayer(parts);
    return this.plan;
  }

  private planParts(par = this.parallel): PlanInputs {
    const w = this.routerWeight;
    // under a parallel plan the rank's experts run: the strategy's bank
    const bank = par?.bank ?? this.experts;
    return {
      cfg: this.cfg,
      backend: w.backend,
      dtype: w.dtype,
      dispatcher: this.dispatcher,
      bankBiases: Boolean(bank.gateUpBias || bank.downBias),
      weightsTogether: together(w, bankTensors(bank)),
      parallel: par,
    };
  }

  /** [S_raw] when the topology is on (optimise it in its own group: CT-MoE uses lr × 100, no weight decay), else []. */
  topologyParameters(): Parameter[] {
    return this.topology ? [this.topology.sRaw] : [];
  }

  /** x [..., H] -> [..., H]. In training with grad, the scaled aux losses ride on the output. */
  forward(x: Tensor, opts: MoEForwardOptions = {}): Tensor {
    return this.forwardDetails(x, opts, false).y;
  }

  /**
   * forward, also handing out what it computed on the way (nothing is recomputed): the routing
   * (logits, scores, top-k ids and weights, counts: Diffulex's RouterMetadata and more), the
   * routed experts' output and the shared expert's apart, the dropped slots and the metrics.
   */
  forwardWithRouting(x: Tensor, opts: MoEForwardDetailsOptions = {}): MoEForwardDetails {
    return this.forwardDetails(x, opts, true);
  }

  /** wantDetails: the routed and shared outputs are handed out (across ranks they are gathered only then). */
  private forwardDetails(x: Tensor, opts: MoEForwardDetailsOptions, wantDetails: boolean): MoEForwardDetails {
    const E = this.cfg.router.numExperts;
    const facts =
      opts.activationFacts && this.cfg.experts.kind === 'gpt-oss' ? { gateClamped: new Int32Array(E), upClamped: new Int32Array(E) } : null;
    this.experts.activationFacts = facts;
    try {
      return this.run(x, opts, wantDetails);
    } finally {
      this.experts.activationFacts = null;
    }
  }

  private run(x: Tensor, opts: MoEForwardOptions, wantDetails: boolean): MoEForwardDetails {
    const H = this.cfg.hiddenSize;
    const part = this.expertShard;
    const par = this.parallel;
    if (part && part.count < this.cfg.router.numExperts && !par)
      throw new Error(
        `MoELayer: this layer holds experts [${part.first}, ${part.first + part.count}) of ${this.cfg.router.numExperts} only (expertShard); run it inside an expert- or tensor-parallel block (src/dist)`,
      );
    if (x.shape[x.ndim - 1] !== H)
      throw new RangeError(`MoELayer: input's last axis must be hiddenSize = ${H} (got ${shapeToString(x.shape)})`);
    const x2 = reshape(x, [-1, H]);
    if (this.checkFiniteInput) assertFiniteRouterInput(x2, 'MoELayer');
    const T = x2.shape[0]!;
    const rc = this.cfg.router;
    const mask = opts.mask ? reshape(opts.mask, [T]) : null;
    if (par && mask) throw new Error(`${par.kind} MoE block: a padding mask is not supported across ranks (leave the padding tokens out)`);
    if (par && this.routingHook?.force)
      throw new Error(`${par.kind} MoE block: a routing replay (RoutingHook.force) is not supported across ranks; replay in one process`);
    const wantLosses = this.training && isGradEnabled();
    const batchSize = opts.batchSize ?? (x.ndim === 3 ? x.shape[0]! : 1);
    const parts = this.planParts();
    const plan = this.planFor(parts);
    const run = layerCall(plan, parts, {
      x: x2,
      mask,
      training: this.training,
      wantLosses,
      activationFacts: this.experts.activationFacts !== null,
    });
    let r: RouterOutput;
    let y: Tensor;
    let droppedSlots: number;
    let keptSlots: Tensor | null = null;
    let losses: AuxLosses | null;
    let routed: Tensor;
    let shared: Tensor | null = null;
    let localCounts: Tensor | null = null;
    if (par) {
      // across ranks: the strategy moves the tokens, the layer's own steps do the rest
      const out = par.forward(x2, this.parallelSteps(plan, run, wantDetails || Boolean(this.routingHook?.observe)));
      ({ routing: r, y, droppedSlots, localCounts } = out);
      routed = out.routed ?? y; // y only where no details were asked for (forward hands out y alone)
      shared = out.shared;
      losses = wantLosses ? this.auxLosses(r, null, batchSize, false, null, out.lbCounts) : null;
    } else if (run.layerNode && !this.routingHook) {
      // the whole block as one node, with the aux losses' gradient inside it
      const node = layerNode(plan.kernels!, {
        x: x2,
        routerWeight: this.routerWeight,
        router: rc,
        dispatcher: this.dispatcher as LocalDispatcher,
        bank: this.experts,
      });
      r = node.routed;
      losses = wantLosses ? this.auxLosses(r, mask, batchSize, true) : null;
      ({ y, droppedSlots } = node.experts(losses?.gradient ?? null));
      routed = y;
    } else {
      const S = this.topology ? this.topology.forward() : null;
      r = this.routeChain(x2, S, run.routerKernel ? plan.kernels : null);
      r = this.routingHook?.force?.(this, r) ?? r;
      const { routing, slotScale } = this.combineRouting(r, S);
      ({ y, droppedSlots, keptSlots } = this.expertsChain(
        x2,
        routing,
        slotScale,
        run.expertsKernel ? plan.kernels : null,
        plan.device ?? null,
      ));
      losses = wantLosses ? this.auxLosses(r, mask, batchSize, false, plan.device ?? null) : null;
      routed = y;
    }
    if (!par) {
      // across ranks the strategy mixed it in on its tokens
      shared = this.sharedOutput(x2, T);
      if (shared) y = this.mixShared(y, shared);
    }
    if (losses?.total) y = attachAuxLoss(y, losses.total);
    if (this.training && this.selectionBias) this.selectionBias.accumulate(localCounts ?? r.counts);

    if (keptSlots) {
      // the 'device' path: nothing is read here (readMetrics reads it when asked)
      this.lastMetrics = null;
      this.pendingMetrics = {
        counts: r.counts,
        scores: r.scores,
        keptSlots,
        numTokens: T,
        topK: rc.topK,
        numExperts: rc.numExperts,
        lb: losses?.pending?.lb ?? null,
        z: losses?.pending?.z ?? null,
        weights: losses?.weights ?? null,
      };
      if (this.training) this.pendingUsage = this.pendingUsage ? add(this.pendingUsage, r.counts) : r.counts;
    } else {
      this.pendingMetrics = null;
      const m = this.hostMetrics(r, T, droppedSlots, losses);
      if (this.training) m.tokensPerExpert.forEach((c, e) => (this.usage[e]! += c));
      this.lastMetrics = m;
    }
    const details = {
      y: reshape(y, x.shape),
      routing: r,
      routed: reshape(routed, x.shape),
      shared: shared ? reshape(shared, x.shape) : null,
      droppedSlots,
      metrics: this.lastMetrics,
      activationFacts: this.experts.activationFacts,
    };
    this.routingHook?.observe?.(this, details);
    return details;
  }

  /** The metrics of a forward whose counts and losses the host can read now (warns once when every slot was dropped). */
  private hostMetrics(r: RouterOutput, T: number, droppedSlots: number, losses: AuxLosses | null): MoEMetrics {
    const rc = this.cfg.router;
    if (T > 0 && droppedSlots === T * rc.topK && !this.saidAllDropped) {
      // OLMo-core's capacity truncates: a tiny capacityFactor makes it 0, and the layer outputs only its shared part
      this.saidAllDropped = true;
      console.warn(
        `moekit: MoELayer dropped all ${T * rc.topK} routed slots of a batch of ${T} tokens: dispatch.capacityFactor = ${this.cfg.dispatch.capacityFactor} gives every expert a capacity of 0 (raise it, or null for dropless)`,
      );
    }
    const counts = r.counts.dataSync() as Int32Array;
    return {
      tokensPerExpert: Int32Array.from(counts),
      ...countMetrics(counts),
      routerEntropy: r.pass?.entropy ?? meanRowEntropy(r.scores.dataSync(), T, rc.numExperts),
      droppedFraction: T > 0 ? droppedSlots / (T * rc.topK) : 0,
      lbLoss: losses?.lb ?? null,
      lbLossScaled: losses ? (losses.lb ?? 0) * losses.weights.lb : null,
      zLoss: losses?.z ?? null,
      zLossScaled: losses ? (losses.z ?? 0) * losses.weights.z : null,
    };
  }

  /**
   * The latest forward's metrics on every path: lastMetrics where they were computed in the
   * forward, else (the 'device' path) read from the device now, with the all-dropped warning.
   */
  async readMetrics(): Promise<MoEMetrics | null> {
    const p = this.pendingMetrics;
    if (!p) return this.lastMetrics;
    const { droppedSlots, ...m } = await readPendingMetrics(p);
    if (p.numTokens > 0 && droppedSlots === p.numTokens * p.topK && !this.saidAllDropped) {
      this.saidAllDropped = true;
      console.warn(
        `moekit: MoELayer dropped all ${droppedSlots} routed slots of a batch of ${p.numTokens} tokens: dispatch.capacityFactor = ${this.cfg.dispatch.capacityFactor} gives every expert a capacity of 0 (raise it, or null for dropless)`,
      );
    }
    if (this.pendingMetrics === p) this.lastMetrics = m;
    return m;
  }

  /** On the 'device' path: add the training forwards' counts since the last call to `usage` (one read); elsewhere `usage` is current and this reads nothing. */
  *settleUsage(): Reads<void> {
    const p = this.takePendingUsage();
    if (p) this.addUsage((yield* read(p))[0]!);
  }

  /** settleUsage in two halves, for a caller that reads the counts together with other values: the pending [E] counts tensor (null: none), handed over once. */
  takePendingUsage(): Tensor | null {
    const p = this.pendingUsage;
    this.pendingUsage = null;
    return p;
  }

  /** Add read counts (takePendingUsage's) to `usage`. */
  addUsage(counts: ArrayLike<number>): void {
    for (let e = 0; e < this.usage.length; e++) this.usage[e]! += counts[e]!;
  }

  /**
   * The latest forward's scaled LB loss (lastMetrics.lbLossScaled), for logging a total: a
   * number where the metrics are computed in the forward, a detached device scalar on the
   * 'device' path, null when that forward computed no LB loss.
   */
  scaledLbLoss(): number | Tensor | null {
    const p = this.pendingMetrics;
    if (!p) return this.lastMetrics?.lbLossScaled ?? null;
    return p.lb && p.weights ? mul(p.lb.detach(), p.weights.lb) : null;
  }

  /** The router GEMM and routing as their own nodes (with the topology's routing bias when S is given); kernels: the router pass's, or null for the composition. */
  private routeChain(x2: Tensor, S: Tensor | null, kernels: MoeKernels | null): RouterOutput {
    const tc = this.cfg.topology;
    return route(x2, this.routerWeight, this.routerBias, this.cfg.router, {
      training: this.training,
      generator: this.generator,
      selectionBias: this.selectionBias?.bias ?? null,
      logitBias: S && tc?.routingBias ? topologyRoutingBias(S, tc.routingScale) : null,
      routerKernels: kernels,
    });
  }

  /**
   * Topology message passing, folded into the combine coefficients (exact, see collaboration.ts):
   * weights on the output -> the dispatcher combines with b = w + c·wᵀS_sub; weights on the
   * input -> each row's output is scaled by b = 1 + c·1ᵀS_sub (slotScale) before an unweighted
   * combine. Without S's message passing: the routing as it is.
   */
  private combineRouting(
    r: RouterOutput,
    S: Tensor | null,
  ): { routing: Pick<RouterOutput, 'topkIds' | 'topkWeights'>; slotScale: Tensor | null } {
    const tc = this.cfg.topology;
    if (!(S && tc?.collaboration)) return { routing: r, slotScale: null };
    const sSub = topologySubmatrices(S, r.topkIds);
    if (this.cfg.dispatch.weightsOn === 'output')
      return {
        routing: { topkIds: r.topkIds, topkWeights: collaborationCoefficients(sSub, r.topkWeights, tc.collabScale) },
        slotScale: null,
      };
    return { routing: r, slotScale: collaborationCoefficients(sSub, fullLike(r.topkWeights, r.topkWeights.shape, 1), tc.collabScale) };
  }

  /** dispatch -> experts -> combine on a routing (combineRouting's): one node over the kernels when given, the device path's composition with device kernels, else the dispatcher and bank. */
  private expertsChain(
    x2: Tensor,
    routing: Pick<RouterOutput, 'topkIds' | 'topkWeights'>,
    slotScale: Tensor | null,
    kernels: MoeKernels | null,
    device: DeviceMoeKernels | null,
    dispatcher: Dispatcher = this.dispatcher,
    bank: ExpertBank = this.experts,
  ): { y: Tensor; droppedSlots: number; keptSlots: Tensor | null } {
    if (device) {
      const d = deviceRoutedExperts(device, dispatcher as LocalDispatcher, x2, routing, bank, slotScale);
      return { y: d.y, droppedSlots: Number.NaN, keptSlots: d.keptSlots };
    }
    if (kernels) return { ...routedExperts(kernels, x2, routing, dispatcher as LocalDispatcher, bank), keptSlots: null };
    const d = dispatcher.dispatch(x2, routing);
    let out = bank.forward(d.rows, d.exec);
    if (slotScale)
      out = mul(
        out,
        reshape(indexSelect(reshape(slotScale, [slotScale.size]), 0, d.meta.sortedSlots).to(out.dtype), [d.meta.sortedSlots.size, 1]),
      );
    return { y: dispatcher.combine(out, d.meta), droppedSlots: d.meta.droppedSlots.length, keptSlots: null };
  }

  /** What a parallel execution borrows from this layer for one forward (execution/parallel.ts), on the plan's paths. */
  private parallelSteps(plan: ExecutionPlan, run: { routerKernel: boolean; expertsKernel: boolean }, wantDetails: boolean): ParallelSteps {
    return {
      wantDetails,
      route: (xs) => {
        const S = this.topology ? this.topology.forward() : null;
        const r = this.routeChain(xs, S, run.routerKernel ? plan.kernels : null);
        return { ...r, combineWeights: this.combineRouting(r, S).routing.topkWeights };
      },
      experts: (bank, rows, ids, weights, capacity) => {
        // each row is a token with one slot: the single-process experts path over the rank's experts
        const R = rows.shape[0]!;
        const local = new LocalDispatcher(bank.numExperts, this.cfg.dispatch, capacity);
        const routing = { topkIds: arrayLike(rows, ids, [R, 1]), topkWeights: reshape(weights, [R, 1]) };
        const e = this.expertsChain(rows, routing, null, run.expertsKernel ? plan.kernels : null, null, local, bank);
        return { y: e.y, droppedSlots: e.droppedSlots };
      },
      mixShared: (xs, routed) => {
        const s = this.sharedOutput(xs, xs.shape[0]!);
        return { y: s ? this.mixShared(routed, s) : routed, shared: s };
      },
    };
  }

  /** After each optimiser step: update the selection bias from the counts since the last one, reset global-batch LB. */
  postBatch(): void {
    this.selectionBias?.update();
    this.lbAccumulator?.reset();
    this.deviceLbAccumulator?.reset();
  }

  /** The shared expert's output (gated) on x2 [T, H], or null without one (the parallel blocks call it and mixShared). */
  sharedOutput(x2: Tensor, T: number): Tensor | null {
    if (!this.cfg.shared || !this.sharedExpert) return null;
    const exec: ExpertExecutionMetadata = {
      numExperts: 1,
      numRows: T,
      segOffsets: Int32Array.of(0, T),
      rowsPerExpert: Int32Array.of(T),
      rowExperts: fullLike(x2, [T], 0, 'i32'),
    };
    const s = this.sharedExpert.forward(x2, exec);
    return this.sharedGate ? mul(s, sigmoid(matmul(x2, this.sharedGate, { transB: true }))) : s;
  }

  /** routed + shared, or OLMo-core's mix shared/(K+1) + routed·K/(K+1). */
  mixShared(y: Tensor, s: Tensor): Tensor {
    if (this.cfg.shared!.mix === 'add') return add(y, s);
    const K = this.cfg.router.topK;
    return add(mul(s, 1 / (K + 1)), mul(y, K / (K + 1)));
  }

  /**
   * The scaled aux losses: their total as a node to attach to the output, or, inLayerNode,
   * only their values and the gradient the layer node applies itself (total null).
   */
  private auxLosses(
    r: RouterOutput,
    mask: Tensor | null,
    batchSize: number,
    inLayerNode: boolean,
    device: DeviceMoeKernels | null = null,
    lbCounts?: () => { counts: ArrayLike<number>; tokens: number },
  ): AuxLosses {
    const lc = this.cfg.losses;
    const weights = auxLossWeights(lc, this.numLayers);
    const pass = routerKernelLossesCover(this.cfg, mask) ? r.pass : undefined;
    if (pass) {
      if (weights.lb > 0) this.lbAccumulator?.addCounts(pass.counts, pass.numTokens);
      const options = { weights, convention: lc.lbConvention, frequencies: this.lbAccumulator?.frequencies() ?? null };
      if (inLayerNode) {
        const terms = routerPassAuxTerms(pass, options);
        return { total: null, lb: terms?.lb ?? null, z: terms?.z ?? null, weights, gradient: terms?.gradient(1) ?? null };
      }
      return { ...routerPassAuxLoss(pass, options), weights, gradient: null };
    }
    const { scores, topkIds: ids, logits } = r;
    if (device) return this.deviceAuxLosses(r, mask, batchSize, weights);
    let total: Tensor | null = null;
    let lb: number | null = null;
    let z: number | null = null;
    if (weights.lb > 0) {
      if (this.lbAccumulator && lbCounts) {
        const g = lbCounts(); // a parallel plan's counts over every rank (global-batch LB)
        this.lbAccumulator.addCounts(g.counts, g.tokens);
      } else this.lbAccumulator?.add(ids, mask);
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

  /**
   * auxLosses on the 'device' path, values left on the device: LB from the router's device
   * counts, or with a padding mask, per sequence or with global-batch frequencies from the
   * slot counts made on the device (device/balancing.ts).
   */
  private deviceAuxLosses(r: RouterOutput, mask: Tensor | null, batchSize: number, weights: { lb: number; z: number }): AuxLosses {
    const lc = this.cfg.losses;
    const normalizeScores = this.cfg.router.scoreFunc === 'sigmoid';
    let lb: Tensor | null = null;
    if (weights.lb > 0) {
      if (lc.lbGranularity === 'global-batch') this.deviceLbAccumulator ??= new DeviceLoadBalanceAccumulator();
      lb =
        !mask && lc.lbGranularity === 'local-batch'
          ? loadBalancingLossFromCounts(r.scores, r.counts, this.cfg.router.topK, { convention: lc.lbConvention, normalizeScores })
          : deviceLoadBalancingLoss(r.scores, r.topkIds, {
              convention: lc.lbConvention,
              batchSize: lc.lbGranularity === 'instance' ? batchSize : 1,
              mask,
              accumulator: lc.lbGranularity === 'global-batch' ? this.deviceLbAccumulator : null,
              normalizeScores,
            });
    }
    const z = weights.z > 0 ? deviceZLoss(r.logits, mask) : null;
    const parts = [lb && mul(lb, weights.lb), z && mul(z, weights.z)].filter((t): t is Tensor => t !== null);
    const total = parts.length === 0 ? null : parts.length === 1 ? parts[0]! : add(parts[0]!, parts[1]!);
    return { total, lb: null, z: null, weights, gradient: null, pending: { lb, z } };
  }
}
