// moekit: Mixture-of-Experts for TypeScript, on a tensor engine of its own.
// The public API, listed name by name (a new export is added here on purpose).
// backend
export type { AdamWHyper, Backend, BinaryOp, ReduceOp, UnaryOp } from './backend/backend.js';
export type {
  CombineArgs,
  DeviceGemmArgs,
  DeviceMoeKernels,
  DeviceRoutePlan,
  DeviceWgradArgs,
  ExpertBiasArgs,
  ExpertMatrixArg,
  GeluBackwardArgs,
  GeluLayout,
  GemmGeluArgs,
  GemmRowsArgs,
  GemmSwigluArgs,
  GemmWgradArgs,
  GptOssConstants,
  MatrixArg,
  MoeKernels,
  PlanRoutesArgs,
  RoutePlan,
  RouterForwardResult,
  RouterGradTerms,
  RouterLayerBackwardArgs,
  RouterShape,
  SwigluBackwardArgs,
  SwigluLayout,
} from './backend/moe.js';
export { referenceBackend } from './backend/reference/index.js';
export {
  availableBackends,
  backendInfo,
  type BackendInfo,
  type BackendName,
  getBackend,
  initBackend,
  setBackend,
} from './backend/registry.js';
export type { DType, FloatDType, HalfArray, HalfDType, Storage, TypedArray } from './backend/types.js';
export { BF16Array, F16Array } from './backend/types.js';
// tensor
export { type BackwardOptions, type GradNode, isGradEnabled, noGrad, withGradEnabled } from './tensor/autograd.js';
export { useThroughputGc } from './tensor/gc-policy.js';
export { defaultGenerator, Generator, type GeneratorState, manualSeed } from './tensor/random.js';
export { broadcastShapes, numel, type Shape, shapeToString } from './tensor/shape.js';
export { Tensor } from './tensor/tensor.js';
export { keep, openScope, type TidyScope, tidy } from './tensor/scope.js';
export { type Reads, read, readScalars, runReadsAsync, runReadsSync } from './tensor/reads.js';
// ops
export { type AttentionOptions, scaledDotProductAttention } from './ops/attention.js';
export { broadcastTo, sumToShape } from './ops/broadcast.js';
export { cast } from './ops/cast.js';
export {
  arange,
  type CreateOptions,
  fromArray,
  full,
  ones,
  onesLike,
  rand,
  randint,
  randn,
  type RandomOptions,
  tensor,
  zeros,
  zerosLike,
} from './ops/creation.js';
export { dropout } from './ops/dropout.js';
export {
  abs,
  add,
  clamp,
  div,
  eq,
  exp,
  ge,
  gelu,
  gt,
  le,
  log,
  lt,
  maximum,
  minimum,
  mul,
  ne,
  neg,
  pow,
  rawBinary,
  reciprocal,
  relu,
  rsqrt,
  sigmoid,
  sign,
  silu,
  sqrt,
  square,
  sub,
  tanh,
  where,
} from './ops/elementwise.js';
export { embedding, gather, indexAdd, indexSelect, oneHot, scatterAdd } from './ops/indexing.js';
export { matmul, type MatmulOptions } from './ops/linalg.js';
export { crossEntropy, type CrossEntropyOptions } from './ops/loss.js';
export { layerNorm, rmsNorm } from './ops/norm.js';
export { argmax, argmin, type Axes, cumsum, logsumexp, max, mean, min, sum } from './ops/reduce.js';
export { chunk, concat, flatten, narrow, permute, reshape, slice, split, squeeze, stack, transpose, unsqueeze } from './ops/shape.js';
export { logSoftmax, softmax } from './ops/softmax.js';
export { argsort, sort, topk, type TopK } from './ops/sort.js';
export type { TensorLike } from './ops/util.js';
// nn
export { CausalSelfAttention, type CausalSelfAttentionConfig } from './nn/attention.js';
export { Block, GPT, type GPTConfig, MLP, validateGPTConfig } from './nn/gpt.js';
export {
  calculateFans,
  constant_,
  fanIn,
  fanOut,
  kaimingUniform_,
  kaimingUniformBound,
  leakyReluGain,
  normal_,
  ones_,
  truncNormal_,
  uniform_,
  zeros_,
} from './nn/init.js';
export {
  Dropout,
  Embedding,
  GELU,
  LayerNorm,
  type LayerNormOptions,
  Linear,
  type LinearOptions,
  type ParamOptions,
  RMSNorm,
  type RMSNormOptions,
} from './nn/layers.js';
export {
  type LoadStateDictOptions,
  type LoadStateDictResult,
  Module,
  type ModuleList,
  Parameter,
  type StateDict,
  type UnaryModule,
} from './nn/module.js';
export { safetensorsToStateDict, stateDictToSafetensors } from './nn/state.js';
// mixed precision
export { autocastDtype, withAutocast } from './amp/autocast.js';
export { GradScaler, type GradScalerOptions, type GradScalerState, type ScalableOptimizer } from './amp/grad-scaler.js';
// optim
export {
  AdamW,
  type AdamWOptions,
  type AdamWParamState,
  type AdamWStateDict,
  type ParamGroup,
  type ParamGroupInput,
} from './optim/adamw.js';
export { clipGradNorm, clipGradNormAsync, clipGradNormDeferred } from './optim/clip.js';
export {
  type HasParamGroups,
  type LrLambda,
  LRScheduler,
  type LRSchedulerState,
  warmupCosine,
  type WarmupCosineOptions,
} from './optim/schedule.js';
// moe
export { attachAuxLoss } from './moe/aux-loss.js';
export { biasUpdateDelta, SelectionBias } from './moe/balancing.js';
export {
  type DispatchConfig,
  type ExpertConfig,
  type ExpertKind,
  type GateUpLayout,
  type GroupLimitConfig,
  type LbConvention,
  type LbGranularity,
  type LossConfig,
  moeConfig,
  type MoEConfig,
  type MoEConfigInput,
  type MoETopologyConfig,
  type Orientation,
  parseDispatchConfig,
  parseExpertConfig,
  parseLossConfig,
  parseMoEConfig,
  parseMoETopologyConfig,
  parseRouterConfig,
  parseSharedExpertConfig,
  type Renormalize,
  routerConfig,
  type RouterConfig,
  type RouterKind,
  type ScoreFunc,
  type SelectionBiasConfig,
  type SelectOn,
  type SharedExpertConfig,
  type SparseMixerConfig,
} from './moe/config.js';
export {
  type Dispatcher,
  type DispatchMetadata,
  type DispatchResult,
  type ExpertExecutionMetadata,
  RouterMetadata,
  type RouterOutput,
  type RouterPassState,
} from './moe/contracts.js';
export { expertCapacity, LocalDispatcher, planSlots, type SlotPlan } from './moe/dispatch.js';
export { type ExecutionPlan, type MoePath, type MoePathSetting, planForConfig } from './moe/execution/plan.js';
export {
  describeParallel,
  type ParallelExecution,
  type ParallelOutput,
  type ParallelSpec,
  type ParallelSteps,
} from './moe/execution/parallel.js';
export { expertChoiceCapacity, ExpertChoiceDispatcher, type ExpertChoiceRouterOutput, routeExpertChoice } from './moe/expert-choice.js';
export type { ExpertWeights } from './moe/expert-weights.js';
export { clampedSwiglu, ExpertBank, type ExpertBankOptions, runExperts } from './moe/experts.js';
export { groupedMatmul, type GroupedMatmulOptions } from './moe/grouped-gemm.js';
export {
  getDecoderSparseStep,
  getFirstKDenseReplace,
  getMlpOnlyLayers,
  getMoeIntermediateSize,
  getMoeLayerFreq,
  getNormTopkProb,
  getNumExperts,
  getNumExpertsPerTok,
  type HfConfig,
  hfTextConfig,
  isMoeLayer,
  normalizeHfConfig,
} from './moe/hf-config.js';
export {
  hfBlockConfig,
  hfBlockKeys,
  type HfBlockKeys,
  HfCheckpointError,
  type HfExpertFormat,
  hfExpertFormats,
  hfLayerPrefix,
  type HfTensorLike,
  type HfTensorSource,
  loadMoEBlockFromHf,
  type LoadMoEBlockOptions,
  type MoeLayerToHfOptions,
  moeLayerToHfTensors,
} from './moe/hf/checkpoint.js';
export { dequantizeMxfp4, e8m0, FP4_E2M1_VALUES, fp4E2M1 } from './moe/hf/mxfp4.js';
export { type ExpertShard, type MoEForwardDetails, type MoEForwardOptions, MoELayer, type MoELayerOptions } from './moe/layer.js';
export { auxLossWeights, LoadBalanceAccumulator, loadBalancingLoss, type LoadBalancingOptions, zLoss } from './moe/losses.js';
export { countMetrics, meanRowEntropy, type MoEMetrics } from './moe/metrics.js';
export {
  loadMoEBlockFromOlmoCore,
  type LoadOlmoCoreMoEOptions,
  type MoeLayerToOlmoCoreOptions,
  moeLayerToOlmoCoreTensors,
  olmoCoreMoEPrefix,
} from './moe/olmo-core/checkpoint.js';
export {
  MOE_TYPES,
  type MoEType,
  OLMO_CORE_DEFAULT_CAPACITY_FACTOR,
  OLMO_CORE_SIGMOID_EPS,
  olmoCoreMoEConfig,
  olmoCoreMoEFlopsPerToken,
  type OlmoCoreMoEInput,
  olmoCoreNumParams,
  type OlmoCoreRouterInput,
} from './moe/olmo-core/config.js';
export { type OlmoCoreLbOptions, olmoCoreLoadBalancingLoss, olmoCoreRouterZLoss } from './moe/olmo-core/losses.js';
export { moePostBatch, postBatch, type PostBatchOptions } from './moe/olmo-core/post-batch.js';
export {
  moeConfigFromHf,
  moeParamCounts,
  type MoEParamCounts,
  OLMO_CORE_PRESETS,
  olmoCorePreset,
  type OlmoCorePresetName,
  presetFromHf,
  type PresetFromHfOptions,
  type PresetName,
  presetNameFromHf,
  PRESETS,
} from './moe/presets.js';
export { expertCounts, limitGroups, maskGroups, route, routeLogits, type RouteOptions } from './moe/router.js';
export { routeSparseMixer, type SparseMixerOptions } from './moe/sparsemixer.js';
export { type ExpertSources, rebuildExperts } from './moe/surgery/bank-rows.js';
export { expertsByUsage, mergeExperts, type MergeOptions, pruneExperts, type PruneOptions } from './moe/surgery/prune-merge.js';
export { collectRoutingStats, type RoutingStats } from './moe/surgery/routing-stats.js';
export { type DenseMlpWeights, upcycle, type UpcycleOptions } from './moe/surgery/upcycle.js';
export { ConfigError, isRecord } from './moe/validate.js';
// moe/routing
export type { RoutingHook } from './moe/routing/hook.js';
export { RECORDING_FORMAT, type RoutingRecord, type RoutingRecordingIndex, type RoutingRecordScalars } from './moe/routing/record.js';
export { moeLayersOf, RoutingRecorder, type RoutingRecorderOptions } from './moe/routing/recorder.js';
export { readRoutingRecording, writeRoutingRecording } from './moe/routing/recording-file.js';
export { RoutingReplay } from './moe/routing/replay.js';
// moe/hierarchy
export { celmoeConfig, type CELMoEConfig, type CELMoEConfigInput, type CELMoEOutput, ExpertModule } from './moe/hierarchy/celmoe-names.js';
export {
  hierarchyConfig,
  type HierarchyConfig,
  type HierarchyConfigInput,
  hierarchyConfigToJSON,
  type HierarchyExpertConfig,
  type HierarchyExpertConfigInput,
  type HierarchyLevelConfig,
  type HierarchyLevelConfigInput,
  type JsonValue,
  parseHierarchyConfig,
  parseHierarchyExpertConfig,
  parseHierarchyLevelConfig,
} from './moe/hierarchy/config.js';
export { asExpert, LinearExpert, ModuleExpert } from './moe/hierarchy/experts.js';
export {
  type FusionInput,
  type FusionResult,
  type HierarchyFusion,
  LearnedFusion,
  MeanFusion,
  weightedSum,
} from './moe/hierarchy/fusion.js';
export {
  type BridgeLossFn,
  CELMoELossAPI,
  type GlobalLossFn,
  type LevelLossFn,
  LossAPI,
  type LossAPIOptions,
  type LossBundle,
  type LossOptions,
  type LossScope,
  type LossTerm,
} from './moe/hierarchy/loss.js';
export {
  HierarchicalCELMoE,
  HierarchicalMoE,
  type HierarchicalMoEOptions,
  type HierarchyForwardOptions,
  HierarchyLevel,
} from './moe/hierarchy/model.js';
export {
  checkRoutingKeys,
  groupByExpert,
  type HierarchyRouting,
  type LevelRouting,
  resolveLevelRouting,
  type RouteGroup,
  RoutingError,
} from './moe/hierarchy/routing.js';
export type {
  ExpertBatch,
  ExpertContext,
  ExpertFactory,
  ExpertLoss,
  ExpertResult,
  HierarchyExpert,
  HierarchyOutput,
  LevelOutput,
} from './moe/hierarchy/types.js';
// moe/topology
export { collaborationCoefficients, topologyRoutingBias, topologySubmatrices } from './moe/topology/collaboration.js';
export { CT_MOE_LAYER_DEFAULTS, ctMoeLayerConfig, type CtMoeLayerConfig } from './moe/topology/config.js';
export { DenseDispatcher } from './moe/topology/dense-dispatcher.js';
export {
  eigenspectrum,
  eigvalshLower,
  routingEntropy,
  sMaxOffDiagonal,
  sRowEntropy,
  takeRoutingEntropy,
} from './moe/topology/diagnostics.js';
export { ctMoeRouterWeight } from './moe/topology/init.js';
export { ctMoePreset, type CtMoePresetOptions } from './moe/topology/preset.js';
export { Topology } from './moe/topology/topology.js';
// dist
export {
  buildMlpOrMoe,
  buildMoeBlock,
  buildTokenDispatcher,
  type MoeBlock,
  type MoeBlockKind,
  type MoeBlockOptions,
  type ParallelPlan,
  type TokenDispatcherKind,
  type TokenDispatcherOptions,
} from './dist/builders.js';
export { mpiInfoLine, type ParallelMode, startParallel } from './dist/cli-parallel.js';
export { type CollectiveOp, type CommBackend, Communicator, worldCommunicator } from './dist/communicator.js';
export {
  type DeepEPMode,
  type DispatcherOutput,
  DispatcherStage,
  type ExpertParallelExecutionMetadata,
  type ForwardPhase,
  resolveDeepEPMode,
  type TokenDispatcher,
  type TokenDispatchMetadata,
} from './dist/contracts.js';
export { DataParallel } from './dist/data-parallel.js';
export { ExpertParallel } from './dist/expert-parallel.js';
export { allReduceGradients, allToAllV, copyToRegion, reduceFromRegion } from './dist/differentiable.js';
export { ExpertParallelMoeBlock } from './dist/ep-block.js';
export { type EpCapacityRule, ExpertParallelExecution, type ExpertParallelOptions, type TokenSharding } from './dist/ep-execution.js';
export { NaiveAllToAllDispatcher } from './dist/naive-dispatcher.js';
export { expertShardFor } from './dist/partition.js';
export { INSTALL_HINT as MPI_INSTALL_HINT, launchedByMpirun } from './dist/native-mpi.js';
export { TensorParallelMoeBlock } from './dist/tp-block.js';
export { TensorParallelExecution } from './dist/tp-execution.js';
// inspect
export {
  checkCheckpoint,
  type CheckpointCheck,
  configFloatDtype,
  type DtypeMismatch,
  expertNormBytes,
  type ExpertNorms,
  expertWeightNorms,
  type ShapeMismatch,
} from './inspect/check.js';
export { checkpointLayout, type CheckpointLayout, type ExpectedTensor, type ExpertSlice } from './inspect/checkpoint-layout.js';
export { flopsPerToken, type FlopsPerToken } from './inspect/flops.js';
export { formatCheckpointCheck, formatExpertNorms } from './inspect/format-checkpoint.js';
export { expertMatrixParams, MXFP4_BITS_PER_VALUE, weightMemory, type WeightMemory } from './inspect/memory.js';
export {
  type AttentionKind,
  type AttentionSpec,
  type DenseFfnSpec,
  type ExtraSpec,
  type FfnSpec,
  llama4VisionParams,
  type MlaSpec,
  type ModelSpec,
  modelSpecFromHf,
  type MoEFfnSpec,
  type NormKind,
  SUPPORTED_MODEL_TYPES,
} from './inspect/model-spec.js';
export {
  attentionParams,
  countModelParams,
  expertParams,
  type ModelParamCounts,
  normParams,
  type ParamBreakdown,
  routerParams,
  sharedParams,
} from './inspect/params.js';
export {
  formatInspectReport,
  humanBytes,
  humanCount,
  inspectModel,
  type InspectOptions,
  type InspectReport,
  inspectSpec,
  type LayerRow,
  textTable,
} from './inspect/report.js';
export { type BlockReport, inspectTarget, InspectTargetError, type InspectTargetOptions, type TargetInspection } from './inspect/target.js';
