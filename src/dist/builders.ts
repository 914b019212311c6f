// Diffulex's package-level builders: buildTokenDispatcher, buildMoeBlock, buildMlpOrMoe.
import type { Module } from '../nn/module.js';
import type { ExpertShard, MoELayer } from '../moe/layer.js';
import { Communicator } from './communicator.js';
import type { DeepEPMode, TokenDispatcher } from './contracts.js';
import { ExpertParallelMoeBlock } from './ep-block.js';
import type { ExpertParallelOptions } from './ep-execution.js';
import { getNumExperts, type HfConfig, isMoeLayer } from '../moe/hf-config.js';
import { expertShardFor } from './partition.js';
import { NaiveAllToAllDispatcher } from './naive-dispatcher.js';
import { TensorParallelMoeBlock } from './tp-block.js';

export type TokenDispatcherKind = 'naive' | 'deepep';
export type MoeBlockKind = 'naive' | 'tp' | 'ep';

export interface TokenDispatcherOptions {
  epGroup: Communicator;
  numLocalExperts: number;
  topK: number;
  deepepMode?: DeepEPMode;
}

/** 'naive' is the all-to-all dispatcher; 'deepep' (NVSHMEM kernels on NVIDIA GPUs) is not available in moekit. */
export function buildTokenDispatcher(kind: TokenDispatcherKind, opts: TokenDispatcherOptions): TokenDispatcher {
  if (kind === 'naive') return new NaiveAllToAllDispatcher(opts.epGroup, opts.epGroup.size, opts.numLocalExperts, opts.topK);
  if (kind === 'deepep') throw new Error("buildTokenDispatcher: 'deepep' is not available in moekit (DeepEP needs NVIDIA GPUs with NVSHMEM); use 'naive'");
  throw new RangeError(`buildTokenDispatcher: kind '${String(kind)}' is not one of 'naive', 'deepep'`);
}

export type MoeBlock = TensorParallelMoeBlock | ExpertParallelMoeBlock;

export interface MoeBlockOptions extends ExpertParallelOptions {
  /** The TP or EP group (default: one process). */
  group?: Communicator;
}

/**
 * A parallel MoE block over an existing MoELayer's config and weights: the layer under the
 * execution plan of that kind (its `executionPlan.summary` says which): 'naive' (one process,
 * the layer's own plan), 'tp' (each rank owns E/tp experts and all tokens) or 'ep' (each rank
 * owns E/ep experts; tokens travel by all-to-all).
 */
export function buildMoeBlock(kind: MoeBlockKind, layer: MoELayer, opts: MoeBlockOptions = {}): MoeBlock {
  const group = opts.group ?? Communicator.single();
  if (kind === 'naive') return new TensorParallelMoeBlock(layer, Communicator.single());
  if (kind === 'tp') return new TensorParallelMoeBlock(layer, group);
  if (kind === 'ep') return new ExpertParallelMoeBlock(layer, group, opts);
  throw new RangeError(`buildMoeBlock: kind '${String(kind)}' is not one of 'naive', 'tp', 'ep'`);
}

export interface ParallelPlan {
  /** Expert-parallel group (size > 1 selects 'ep'). */
  ep?: Communicator;
  /** Tensor-parallel group (size > 1 selects 'tp' when there is no EP). */
  tp?: Communicator;
}

/**
 * Diffulex build_mlp_or_moe: a MoE layer index gets buildMoeBlock('ep' | 'tp' | 'naive') over
 * moeFactory's layer, any other the dense MLP from denseFactory. Under EP / TP, moeFactory gets
 * the experts this rank holds: pass it on as MoELayerOptions.expertShard, so the rank allocates
 * only those (undefined: one process, the whole layer).
 */
export function buildMlpOrMoe(
  config: HfConfig,
  layerIdx: number,
  denseFactory: () => Module,
  moeFactory: (expertShard?: ExpertShard) => MoELayer,
  plan: ParallelPlan = {},
): Module {
  if (!isMoeLayer(config, layerIdx)) return denseFactory();
  for (const kind of ['ep', 'tp'] as const) {
    const group = plan[kind];
    if (group && group.size > 1) return buildMoeBlock(kind, moeFactory(expertShardFor(getNumExperts(config), group, kind)), { group });
  }
  return buildMoeBlock('naive', moeFactory());
}
