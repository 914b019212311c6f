// The expert contract and the data a hierarchical forward produces (celmoe-vp's ExpertBatch,
// ExpertResult, ExpertModule, LevelOutput, CELMoEOutput).
import type { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { JsonValue } from './config.js';

/** Where a sub-batch comes from; handed to the expert with the batch. */
export interface ExpertContext<C = unknown> {
  levelName: string;
  /** Position of the level in the config (disabled levels count). */
  levelIndex: number;
  expertName: string;
  /** Rows of the full batch this sub-batch holds, ascending (sub-batch row i = batch row sampleIndices[i]). */
  sampleIndices: Int32Array;
  /** Size of the full batch. */
  batchSize: number;
  /** The `context` given to the forward, passed through unchanged (not sliced). */
  user: C;
}

/** What an expert receives: the rows routed to it. */
export interface ExpertBatch<C = unknown> {
  /** [b, ..., hiddenSize]: the sub-batch of the level's input (detached when stopGradientFromParent). */
  hidden: Tensor;
  context: ExpertContext<C>;
  /**
   * The forward's mask sliced to the sub-batch ([b, ...] with the hidden's leading shape, 1 for
   * real positions, 0 for padding), or null. The framework never applies it: experts and losses use it.
   */
  mask: Tensor | null;
  /**
   * One mutable object shared by every expert of one forward (levels run in order, so a parent
   * expert can leave something for a child). Created empty per forward unless the caller passes one.
   */
  state: Record<string, unknown>;
}

/** What an expert returns. */
export interface ExpertResult {
  /** Same shape as the batch's hidden. */
  hidden: Tensor;
  /** Named one-element losses; LossAPI adds each times the expert's lossWeight. */
  losses?: Record<string, Tensor>;
  /** Anything else (metrics, attention maps); collected per expert in LevelOutput.aux. */
  aux?: Record<string, unknown>;
}

/** An expert: any moekit Module whose forward maps an ExpertBatch to an ExpertResult. */
export interface HierarchyExpert extends Module {
  forward(batch: ExpertBatch): ExpertResult;
}

/** Builds the expert for (level, expert); called once per expert, levels and experts in config order. */
export type ExpertFactory = (levelName: string, expertName: string, metadata: { readonly [key: string]: JsonValue }) => HierarchyExpert;

/** One expert-reported loss of one level. */
export interface ExpertLoss {
  expert: string;
  name: string;
  /** One-element tensor, as the expert returned it (unweighted). */
  value: Tensor;
  /** The expert's lossWeight. */
  weight: number;
}

/** One level's result. */
export interface LevelOutput {
  name: string;
  /** Position of the level in the config (disabled levels count). */
  index: number;
  /** What the level received (the model input, or the previous enabled level's hidden). */
  input: Tensor;
  /** [B, ..., H]: every sample's expert output, in batch order. */
  hidden: Tensor;
  /** The expert each sample went to (the resolved routing, batch-aligned). */
  experts: string[];
  /** Expert-reported losses, level's experts in declaration order, each expert's losses in insertion order. */
  expertLosses: ExpertLoss[];
  /** Each expert's ExpertResult.aux, for the experts that ran. */
  aux: Record<string, Record<string, unknown>>;
}

/** The model's result (celmoe-vp's CELMoEOutput). */
export interface HierarchyOutput {
  /** Fusion of the enabled levels' hidden states, after fusion dropout. */
  fusedHidden: Tensor;
  /** The enabled levels, in order. */
  levels: LevelOutput[];
  /** [L] fusion weights of the enabled levels (null when a custom fusion gives none). */
  fusionWeights: Tensor | null;
  /** Names of the configured levels that did not run. */
  disabledLevels: string[];
  /** The LevelOutput of an enabled level; a clear error otherwise. */
  level(name: string): LevelOutput;
}
