// The CT-MoE ablation experiment (pingBenM/CT-MoE on moekit).
export * from './config.js';
export * from './data.js';
export * from './model.js';
export * from './eval.js';
export * from './checkpoint.js';
export * from './train.js';
export * from './ablation.js';
export * from './stats.js';
