// A parallel execution of an MoELayer across ranks: one more plan a layer can choose
// (plan.ts, path 'parallel'). The layer is given one (MoELayer.parallelize; src/dist builds them
// over a communicator: expert parallel with the naive all-to-all dispatcher, tensor parallel)
// and asks it once per forward. The strategy owns what crosses ranks — which tokens this rank
// routes (its token shard), where their slots go and come back from, what is summed — and
// borrows everything else from the layer through ParallelSteps: the layer's router, its
// experts on the path the plan picked for them (the kernels on native, the composition on
// reference), its shared expert. The layer then applies its aux losses, metrics and routing
// hook to the routing the strategy hands back, as it does in one process. src/moe imports
// nothing from src/dist: these interfaces are the seam.
import type { Tensor } from '../../tensor/tensor.js';
import type { RouterOutput } from '../contracts.js';
import type { ExpertBank } from '../experts.js';

/** What a parallel plan is, for its summary (also for `moekit info --layer --ep N` without a communicator). */
export interface ParallelSpec {
  readonly kind: 'ep' | 'tp';
  /** Ranks in the EP / TP group. */
  readonly ranks: number;
  /** Experts each rank runs (E / ranks). */
  readonly localExperts: number;
  /** EP only: how each rank's tokens are chosen. */
  readonly sharding?: 'round-robin' | 'local';
}

/** The one-line description of a parallel plan (its summary begins with it). */
export function describeParallel(s: ParallelSpec): string {
  const over = `over ${s.ranks} rank${s.ranks === 1 ? '' : 's'} (${s.localExperts} local expert${s.localExperts === 1 ? '' : 's'})`;
  if (s.kind === 'tp') return `tensor parallel ${over}, every rank routes all tokens, partial outputs all-reduced`;
  const shards = s.sharding === 'local' ? "each rank's own batch (OLMo-core)" : 'round-robin token shards, outputs all-reduced (Diffulex)';
  return `expert parallel ${over}, naive all-to-all dispatcher, ${shards}`;
}

/** What the layer lends the strategy for one forward. */
export interface ParallelSteps {
  /**
   * The layer's router on this rank's tokens x [n, H] (selection bias, the topology's routing
   * bias, the router kernel where the plan has it), and `combineWeights` [n, K]: the top-k
   * weights, or with CT-MoE message passing the folded coefficients (topology/collaboration.ts).
   */
  route(x: Tensor): RouterOutput & { combineWeights: Tensor };
  /**
   * Rows [R, H], each for ONE expert of `bank` (ids: [R] local expert ids) with its weight [R]:
   * the weighted expert outputs [R, H] on the experts path of the layer's plan. A capacity keeps
   * each expert's first `capacity` rows in row order (the others are dropped: zero output).
   */
  experts(bank: ExpertBank, rows: Tensor, ids: Int32Array, weights: Tensor, capacity: number | null): { y: Tensor; droppedSlots: number };
  /** The shared expert on tokens x mixed into their routed output (the layer's own rule); shared null without one. */
  mixShared(x: Tensor, routed: Tensor): { y: Tensor; shared: Tensor | null };
  /** The caller wants the routed and shared outputs of every output token apart (forwardWithRouting, a routing hook). */
  readonly wantDetails: boolean;
}

/** What a parallel forward hands back to the layer. */
export interface ParallelOutput {
  /** [T, H] the output of the tokens this rank returns (all tokens for round-robin EP and TP; its own batch for local EP). */
  y: Tensor;
  /** The routing of those tokens (aux losses, metrics, routing hook; no router-pass state: the losses compose). */
  routing: RouterOutput;
  /** This rank's own routing counts (the selection bias accumulates these; its postBatch sums them where needed). */
  localCounts: Tensor;
  /** Slots dropped by capacity among the returned tokens' slots. */
  droppedSlots: number;
  /** With wantDetails: the routed and shared outputs of the returned tokens. */
  routed: Tensor | null;
  shared: Tensor | null;
  /** Global-batch LB: the counts and token count to accumulate (summed over the ranks), read only when LB accumulates. Absent: the routing's. */
  lbCounts?: () => { counts: ArrayLike<number>; tokens: number };
}

/** A parallel execution a layer can be given (MoELayer.parallelize). */
export interface ParallelExecution extends ParallelSpec {
  /** This rank's experts (the layer's own bank when it holds just those, else a copy of its slice). */
  readonly bank: ExpertBank;
  /** Runs one forward; collective: every rank of the group calls it with the same structure. */
  forward(x: Tensor, steps: ParallelSteps): ParallelOutput;
}
