// Hierarchical experts with named per-sample routing, gradient isolation, learned fusion and a
// multi-scope loss API (the celmoe-vp mechanisms). See docs/hierarchy.md.
export {
  hierarchyConfig,
  hierarchyConfigToJSON,
  parseHierarchyConfig,
  parseHierarchyExpertConfig,
  parseHierarchyLevelConfig,
  type HierarchyConfig,
  type HierarchyConfigInput,
  type HierarchyExpertConfig,
  type HierarchyExpertConfigInput,
  type HierarchyLevelConfig,
  type HierarchyLevelConfigInput,
  type JsonValue,
} from './config.js';
export type {
  ExpertBatch,
  ExpertContext,
  ExpertFactory,
  ExpertLoss,
  ExpertResult,
  HierarchyExpert,
  HierarchyOutput,
  LevelOutput,
} from './types.js';
export {
  RoutingError,
  checkRoutingKeys,
  groupByExpert,
  resolveLevelRouting,
  type HierarchyRouting,
  type LevelRouting,
  type RouteGroup,
} from './routing.js';
export { LearnedFusion, MeanFusion, weightedSum, type FusionInput, type FusionResult, type HierarchyFusion } from './fusion.js';
export { LinearExpert, ModuleExpert, asExpert } from './experts.js';
export {
  HierarchicalCELMoE,
  HierarchicalMoE,
  HierarchyLevel,
  type HierarchicalMoEOptions,
  type HierarchyForwardOptions,
} from './model.js';
export {
  CELMoELossAPI,
  LossAPI,
  type BridgeLossFn,
  type GlobalLossFn,
  type LevelLossFn,
  type LossAPIOptions,
  type LossBundle,
  type LossOptions,
  type LossScope,
  type LossTerm,
} from './loss.js';
export { ExpertModule, celmoeConfig, type CELMoEConfig, type CELMoEConfigInput, type CELMoEOutput } from './celmoe-names.js';
