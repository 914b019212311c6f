// Neural-network modules: Module / Parameter, init schemes, layers, attention, a small GPT.
export {
  Module,
  Parameter,
  type ModuleList,
  type UnaryModule,
  type StateDict,
  type LoadStateDictOptions,
  type LoadStateDictResult,
} from './module.js';
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
} from './init.js';
export {
  Dropout,
  Embedding,
  GELU,
  LayerNorm,
  Linear,
  RMSNorm,
  type LayerNormOptions,
  type LinearOptions,
  type ParamOptions,
  type RMSNormOptions,
} from './layers.js';
export { CausalSelfAttention, type CausalSelfAttentionConfig } from './attention.js';
export { Block, GPT, MLP, validateGPTConfig, type GPTConfig } from './gpt.js';
export { safetensorsToStateDict, stateDictToSafetensors } from './state.js';
