// moekit: Mixture-of-Experts for TypeScript, on a tensor engine of its own.
export * from './backend/index.js';
export * from './tensor/index.js';
export * from './ops/index.js';
export * from './nn/index.js';
export * from './optim/index.js';
export * from './moe/index.js';
export * from './moe/hierarchy/index.js';
export * from './moe/topology/index.js';
export * from './dist/index.js';
