// OLMo-core interop: its MoE config surface and defaults, losses with loss_div_factor,
// post_batch, and checkpoints of its MoE modules.
export * from './config.js';
export * from './losses.js';
export * from './post-batch.js';
export * from './checkpoint.js';
