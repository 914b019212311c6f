// Whole-model accounting and checkpoint checks (`moekit inspect`).
export * from './model-spec.js';
export * from './params.js';
export * from './flops.js';
export * from './memory.js';
export * from './report.js';
