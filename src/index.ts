// moekit: Mixture-of-Experts for TypeScript, on a tensor engine of its own.
export * from './backend/index.js';
export * from './tensor/index.js';
export * from './ops/index.js';
