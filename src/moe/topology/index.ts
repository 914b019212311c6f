// CT-MoE: a learned static expert-collaboration topology S per MoE layer (pingBenM/CT-MoE).
export * from './config.js';
export * from './topology.js';
export * from './dense-dispatcher.js';
export * from './init.js';
export * from './diagnostics.js';
export * from './collaboration.js';
export * from './preset.js';
