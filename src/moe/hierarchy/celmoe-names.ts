// celmoe-vp's public names for moekit's hierarchy API, so code written against celmoe reads the
// same: CELMoEConfig (HierarchyConfig, built by celmoeConfig), CELMoEOutput (HierarchyOutput) and
// the ExpertModule base class (a Module whose forward maps an ExpertBatch to an ExpertResult).
import { Module } from '../../nn/module.js';
import { type HierarchyConfig, type HierarchyConfigInput, hierarchyConfig } from './config.js';
import type { ExpertBatch, ExpertResult, HierarchyExpert, HierarchyOutput } from './types.js';

export type CELMoEConfig = HierarchyConfig;
export type CELMoEConfigInput = HierarchyConfigInput;
export type CELMoEOutput = HierarchyOutput;

/** celmoe's CELMoEConfig(hidden_size, levels, use_learned_fusion, fusion_dropout), validated. */
export function celmoeConfig(input: CELMoEConfigInput): CELMoEConfig {
  return hierarchyConfig(input);
}

/** celmoe's ExpertModule: subclass it and implement forward(batch). */
export abstract class ExpertModule extends Module implements HierarchyExpert {
  abstract forward(batch: ExpertBatch): ExpertResult;
}
