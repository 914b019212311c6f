// The reference backend: plain, readable TypeScript for every kernel. It is the oracle the
// native backend is tested against, and the fallback where the native addon cannot load.
import type { Backend } from '../backend.js';
import { withHalfPrecision } from '../half-precision.js';
import { type DType, type Storage, dtypeOfArray, typedArrayFor } from '../types.js';
import { attention, attentionBackward } from './attention.js';
import { binary, cast, clamp, unary, unaryBackward, where } from './elementwise.js';
import { gather, indexAddInPlace, indexSelect, scatterAddInPlace } from './indexing.js';
import { permute, sliceAddInPlace, sliceCopy } from './layout.js';
import { matmul } from './linalg.js';
import { referenceMoeKernels } from './moe.js';
import { adamwInPlace, axpyInPlace } from './optim.js';
import { argReduce, cumsum, reduce } from './reduce.js';
import { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward, softmax, softmaxBackward } from './rowwise.js';
import { argsort, topk } from './sort.js';

export const referenceBackend: Backend = withHalfPrecision({
  name: 'reference',
  fromArray: (a) => a,
  full(dtype: DType, n: number, value: number): Storage {
    const s = typedArrayFor(dtype, n);
    if (value !== 0) s.fill(value);
    return s;
  },
  readSync: (s) => s,
  read: async (s) => s,
  cast,
  copy: (s) => s.slice(),
  length: (s) => s.length,
  dtypeOf: dtypeOfArray,
  unary,
  unaryBackward,
  binary,
  where,
  clamp,
  reduce,
  argReduce,
  cumsum,
  matmul,
  softmax,
  softmaxBackward,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  rmsNormBackward,
  permute,
  sliceCopy,
  sliceAddInPlace,
  indexSelect,
  indexAddInPlace,
  gather,
  scatterAddInPlace,
  topk,
  argsort,
  attention,
  attentionBackward,
  adamwInPlace,
  axpyInPlace,
  moe: referenceMoeKernels,
});
