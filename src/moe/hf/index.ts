// Hugging Face checkpoints: load an MoE block from a model's own safetensors naming, export back.
export * from './checkpoint.js';
export * from './mxfp4.js';
