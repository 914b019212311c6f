// OLMo-core interop: checkpoints of its MoE modules.
export * from './checkpoint.js';
