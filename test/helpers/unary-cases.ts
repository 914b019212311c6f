// Every unary op with an input range that exercises it (the backend agreement suites share it).
import type { UnaryOp } from '../../src/backend/backend.js';

export const UNARY_CASES: readonly [UnaryOp, number, number][] = [
  ['neg', -3, 3],
  ['exp', -5, 5],
  ['log', 0.01, 5],
  ['sqrt', 0, 5],
  ['rsqrt', 0.01, 5],
  ['abs', -3, 3],
  ['tanh', -4, 4],
  ['sigmoid', -30, 30],
  ['silu', -8, 8],
  ['relu', -1, 1],
  ['gelu', -5, 5],
  ['gelu_tanh', -5, 5],
  ['sign', -1, 1],
  ['square', -3, 3],
  ['reciprocal', 0.1, 3],
];
