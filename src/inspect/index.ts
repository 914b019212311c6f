// Whole-model accounting and checkpoint checks (`moekit inspect`).
export * from './model-spec.js';
export * from './params.js';
export * from './flops.js';
export * from './memory.js';
export * from './report.js';
export * from './checkpoint-layout.js';
export * from './check.js';
export * from './format-checkpoint.js';
export * from './target.js';
