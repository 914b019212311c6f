export type { Backend, UnaryOp, BinaryOp, ReduceOp, AdamWHyper } from './backend.js';
export type {
  MoeKernels,
  MatrixArg,
  ExpertMatrixArg,
  GemmRowsArgs,
  GemmWgradArgs,
  GemmSwigluArgs,
  SwigluLayout,
  SwigluBackwardArgs,
  GemmGeluArgs,
  GeluLayout,
  GeluBackwardArgs,
  GptOssConstants,
  ExpertBiasArgs,
  CombineArgs,
  RoutePlan,
  PlanRoutesArgs,
  RouterShape,
  RouterForwardResult,
  RouterGradTerms,
  RouterLayerBackwardArgs,
} from './moe.js';
export type { DType, FloatDType, TypedArray, Storage } from './types.js';
export { getBackend, setBackend, backendInfo, availableBackends, initBackend, type BackendName, type BackendInfo } from './registry.js';
export { referenceBackend } from './reference/index.js';
