// The differentiable ops: the functional API (importing this also installs tensor methods).
import './methods.js';

export * from './attention.js';
export * from './broadcast.js';
export * from './cast.js';
export * from './creation.js';
export * from './dropout.js';
export * from './elementwise.js';
export * from './indexing.js';
export * from './linalg.js';
export * from './loss.js';
export * from './norm.js';
export * from './reduce.js';
export * from './shape.js';
export * from './softmax.js';
export * from './sort.js';
export type { TensorLike } from './util.js';
