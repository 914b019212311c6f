export { Tensor } from './tensor.js';
export { noGrad, withGradEnabled, isGradEnabled, type GradNode, type BackwardOptions } from './autograd.js';
export { Generator, defaultGenerator, manualSeed, type GeneratorState } from './random.js';
export { numel, broadcastShapes, shapeToString, type Shape } from './shape.js';
export { useThroughputGc } from './gc-policy.js';
