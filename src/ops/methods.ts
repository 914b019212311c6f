// Installs the PyTorch-like method API on Tensor (x.matmul(w).add(b)); each method is the
// op function of the same name with the tensor as its first argument.
import type { DType } from '../backend/types.js';
import { Tensor } from '../tensor/tensor.js';
import { broadcastTo } from './broadcast.js';
import { cast } from './cast.js';
import * as ew from './elementwise.js';
import { gather, indexAdd, indexSelect, scatterAdd } from './indexing.js';
import { type MatmulOptions, matmul } from './linalg.js';
import * as red from './reduce.js';
import * as sh from './shape.js';
import { logSoftmax, softmax } from './softmax.js';
import { type TopK, argsort, sort, topk } from './sort.js';
import type { TensorLike } from './util.js';

declare module '../tensor/tensor.js' {
  interface Tensor {
    add(other: TensorLike): Tensor;
    sub(other: TensorLike): Tensor;
    mul(other: TensorLike): Tensor;
    div(other: TensorLike): Tensor;
    pow(other: TensorLike): Tensor;
    maximum(other: TensorLike): Tensor;
    minimum(other: TensorLike): Tensor;
    eq(other: TensorLike): Tensor;
    ne(other: TensorLike): Tensor;
    lt(other: TensorLike): Tensor;
    le(other: TensorLike): Tensor;
    gt(other: TensorLike): Tensor;
    ge(other: TensorLike): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    abs(): Tensor;
    tanh(): Tensor;
    sigmoid(): Tensor;
    silu(): Tensor;
    relu(): Tensor;
    gelu(approximate?: 'none' | 'tanh'): Tensor;
    square(): Tensor;
    clamp(lo?: number, hi?: number): Tensor;
    sum(axes?: red.Axes, keepdim?: boolean): Tensor;
    mean(axes?: red.Axes, keepdim?: boolean): Tensor;
    max(axes?: red.Axes, keepdim?: boolean): Tensor;
    min(axes?: red.Axes, keepdim?: boolean): Tensor;
    logsumexp(axes?: red.Axes, keepdim?: boolean): Tensor;
    argmax(axis?: number, keepdim?: boolean): Tensor;
    argmin(axis?: number, keepdim?: boolean): Tensor;
    cumsum(axis: number): Tensor;
    matmul(other: Tensor, options?: MatmulOptions): Tensor;
    reshape(shape: readonly number[]): Tensor;
    flatten(startAxis?: number, endAxis?: number): Tensor;
    unsqueeze(axis: number): Tensor;
    squeeze(axis?: number): Tensor;
    permute(perm: readonly number[]): Tensor;
    transpose(axis0?: number, axis1?: number): Tensor;
    slice(axis: number, start: number, end?: number): Tensor;
    narrow(axis: number, start: number, length: number): Tensor;
    split(sizes: number | readonly number[], axis?: number): Tensor[];
    chunk(chunks: number, axis?: number): Tensor[];
    broadcastTo(shape: readonly number[]): Tensor;
    softmax(axis?: number): Tensor;
    logSoftmax(axis?: number): Tensor;
    gather(axis: number, index: Tensor): Tensor;
    indexSelect(axis: number, index: Tensor): Tensor;
    indexAdd(axis: number, index: Tensor, src: Tensor): Tensor;
    scatterAdd(axis: number, index: Tensor, src: Tensor): Tensor;
    topk(k: number, axis?: number, largest?: boolean): TopK;
    sort(axis?: number, descending?: boolean): TopK;
    argsort(axis?: number, descending?: boolean): Tensor;
    to(dtype: DType): Tensor;
  }
}

type Method = (this: Tensor, ...args: never[]) => unknown;

function install(name: string, fn: (x: Tensor, ...args: never[]) => unknown): void {
  const method: Method = function (this: Tensor, ...args: never[]) {
    return fn(this, ...args);
  };
  Object.defineProperty(Tensor.prototype, name, { value: method, writable: true, configurable: true });
}

const table: Record<string, (x: Tensor, ...args: never[]) => unknown> = {
  add: ew.add,
  sub: ew.sub,
  mul: ew.mul,
  div: ew.div,
  pow: ew.pow,
  maximum: ew.maximum,
  minimum: ew.minimum,
  eq: ew.eq,
  ne: ew.ne,
  lt: ew.lt,
  le: ew.le,
  gt: ew.gt,
  ge: ew.ge,
  neg: ew.neg,
  exp: ew.exp,
  log: ew.log,
  sqrt: ew.sqrt,
  rsqrt: ew.rsqrt,
  abs: ew.abs,
  tanh: ew.tanh,
  sigmoid: ew.sigmoid,
  silu: ew.silu,
  relu: ew.relu,
  gelu: ew.gelu,
  square: ew.square,
  clamp: ew.clamp,
  sum: red.sum,
  mean: red.mean,
  max: red.max,
  min: red.min,
  logsumexp: red.logsumexp,
  argmax: red.argmax,
  argmin: red.argmin,
  cumsum: red.cumsum,
  matmul,
  reshape: sh.reshape,
  flatten: sh.flatten,
  unsqueeze: sh.unsqueeze,
  squeeze: sh.squeeze,
  permute: sh.permute,
  transpose: sh.transpose,
  slice: sh.slice,
  narrow: sh.narrow,
  split: sh.split,
  chunk: sh.chunk,
  broadcastTo,
  softmax,
  logSoftmax,
  gather,
  indexSelect,
  indexAdd,
  scatterAdd,
  topk,
  sort,
  argsort,
  to: cast,
};

for (const [name, fn] of Object.entries(table)) install(name, fn);
