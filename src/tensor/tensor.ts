// The Tensor: a dtype, a shape, contiguous storage on a backend, and autograd state.
// Most methods (add, matmul, sum, ...) are installed by src/ops/methods.ts.
import { withAutocast } from '../amp/autocast.js';
import type { Backend } from '../backend/backend.js';
import { getBackend } from '../backend/registry.js';
import { type DType, type Storage, type TypedArray, bytesPerElement, contiguousStrides, isFloatDType } from '../backend/types.js';
import { type BackwardOptions, type GradNode, isGradEnabled, runBackward } from './autograd.js';
import { noteDroppedGradient } from './gc.js';
import { pinStorage, takeTensorId, trackTensor } from './scope-state.js';
import { numel, shapeToString } from './shape.js';

export class Tensor {
  readonly id = takeTensorId();
  readonly shape: readonly number[];
  /** The element type; changes only through `setStorage_` (a module's `.to(dtype)`). */
  dtype: DType;
  readonly backend: Backend;
  /** null once a tidy scope released the tensor (src/tensor/scope.ts). */
  private _storage: Storage | null;
  /** The storage's hand-out generation when this tensor got it, inside a tidy scope (-1 otherwise). @internal */
  storageGeneration: number;
  /** The op that produced this tensor, when it was recorded for autograd. */
  gradFn: GradNode | null;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  /** Non-leaf tensors keep their grad only when asked (retainGrad). */
  retainsGrad = false;
  name: string | undefined;

  constructor(storage: Storage, shape: readonly number[], backend: Backend = getBackend(), gradFn: GradNode | null = null) {
    const n = backend.length(storage);
    if (n !== numel(shape)) {
      throw new RangeError(`Tensor: storage holds ${n} elements but shape ${shapeToString(shape)} needs ${numel(shape)}`);
    }
    this._storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = backend.dtypeOf(storage);
    this.backend = backend;
    this.gradFn = gradFn;
    this.requiresGrad = gradFn !== null;
    this.storageGeneration = trackTensor(this, storage);
  }

  /** Contiguous row-major elements. Replaced (not mutated) by ops; mutated by optimisers. Throws once a tidy scope released the tensor. */
  get storage(): Storage {
    const s = this._storage;
    if (s === null) throw releasedError(this);
    return s;
  }

  set storage(s: Storage) {
    pinStorage(s);
    this._storage = s;
    this.storageGeneration = -1;
  }

  /** Whether a tidy scope released this tensor (its storage may hold another tensor's values now). */
  get isReleased(): boolean {
    return this._storage === null;
  }

  /** The storage, or null once released (src/tensor/scope.ts). @internal */
  storageOrNull(): Storage | null {
    return this._storage;
  }

  /** Called by the tidy scope that releases this tensor. @internal */
  markReleased(): void {
    this._storage = null;
    this.grad = null;
  }

  get size(): number {
    return numel(this.shape);
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** A leaf is a tensor no recorded op produced (parameters, inputs). */
  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  /**
   * Replace a leaf's storage with one of the same size, possibly of another dtype (in place;
   * the gradient is dropped). Modules' `.to(dtype)` use it so optimisers keep their tensors.
   */
  setStorage_(storage: Storage): this {
    if (this.gradFn) throw new Error('setStorage_: only leaf tensors can change their storage');
    const n = this.backend.length(storage);
    if (n !== this.size) throw new RangeError(`setStorage_: storage holds ${n} elements, the tensor has ${this.size}`);
    this.zeroGrad();
    this.storage = storage; // through the setter: a scope open now must not recycle it
    this.dtype = this.backend.dtypeOf(storage);
    return this;
  }

  /**
   * Synchronous read of the elements (CPU backends). Treat the result as read-only. bf16 /
   * f16 tensors read as their f32 values (a fresh Float32Array); `storage` holds the bits.
   */
  dataSync(): TypedArray {
    const s = this.storage;
    pinStorage(s); // the caller may keep the array: no open scope recycles it
    return this.backend.readSync(s);
  }

  /** Read the elements; every backend offers this (a GPU backend waits for its queue). */
  data(): Promise<TypedArray> {
    const s = this.storage;
    pinStorage(s);
    return this.backend.read(s);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new RangeError(`item: tensor of shape ${shapeToString(this.shape)} has ${this.size} elements, expected 1`);
    return this.dataSync()[0]!;
  }

  /** As nested JS arrays (for printing and tests). */
  toArray(): unknown {
    const data = this.dataSync();
    const build = (axis: number, offset: number): unknown => {
      if (axis === this.shape.length) return data[offset];
      const stride = numel(this.shape.slice(axis + 1));
      return Array.from({ length: this.shape[axis]! }, (_, i) => build(axis + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  /** Mark a leaf as requiring gradients (in place; returns this). */
  requiresGrad_(flag = true): this {
    if (flag && !isFloatDType(this.dtype)) {
      throw new TypeError(
        `requiresGrad_: only floating tensors can require gradients (dtype is ${this.dtype}; expected f32, f64, bf16 or f16)`,
      );
    }
    if (!flag && this.gradFn) throw new Error('requiresGrad_(false): only leaf tensors can stop requiring grad; use detach()');
    this.requiresGrad = flag;
    return this;
  }

  /** Keep .grad on this non-leaf tensor after backward. */
  retainGrad(): this {
    this.retainsGrad = true;
    return this;
  }

  /** The same storage, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape, this.backend);
  }

  /** Drops the gradient (PyTorch's set_to_none); its memory is freed at the next collection (tensor/gc.ts). */
  zeroGrad(): void {
    if (this.grad) noteDroppedGradient(this.grad.size * bytesPerElement(this.grad.dtype));
    this.grad = null;
  }

  /** Backpropagate from this tensor; a non-scalar needs an explicit `gradient` of the same shape. */
  backward(gradient?: Tensor, options?: BackwardOptions): void {
    if (!this.requiresGrad)
      throw new Error('backward: this tensor does not require grad (no parameter or input with requiresGrad reaches it)');
    let seed = gradient;
    if (!seed) {
      if (this.size !== 1) {
        throw new Error(`backward: gradient can be implied only for a one-element tensor (shape ${shapeToString(this.shape)})`);
      }
      seed = new Tensor(this.backend.full(this.dtype, 1, 1), this.shape, this.backend);
    }
    // backward runs each op in the dtypes its forward saved, whatever autocast is in effect
    withAutocast(null, () => runBackward(this, seed!, { add: addForGrad, toDtypeOf: castForGrad }, options));
  }

  /** Drop references to the graph behind this tensor (after backward). */
  releaseGraph(): void {
    if (this.gradFn) this.gradFn = null;
  }

  toString(): string {
    const preview = this.size <= 64 ? JSON.stringify(this.toArray()) : `${this.size} elements`;
    return `Tensor(${shapeToString(this.shape)}, ${this.dtype}, ${preview})`;
  }
}

function releasedError(t: Tensor): Error {
  return new Error(
    `Tensor #${t.id} ${shapeToString(t.shape)} ${t.dtype} was released at the end of the tidy scope that created it; return it from the scope, keep() it, or reach it from the scope's roots to use it afterwards`,
  );
}

/** Gradient accumulation: elementwise add of same-shape tensors (no graph). */
function addForGrad(a: Tensor, b: Tensor): Tensor {
  const strides = contiguousStrides(a.shape);
  return new Tensor(a.backend.binary('add', a.storage, strides, b.storage, strides, a.shape, a.dtype), a.shape, a.backend);
}

/** A gradient in its input's dtype (an input of another float dtype than its op's output, as under autocast). */
function castForGrad(g: Tensor, like: Tensor): Tensor {
  return new Tensor(g.backend.cast(g.storage, like.dtype), g.shape, g.backend);
}

/** Whether makeOutput will record a node for an op of these inputs (grad mode on, an input needs grad). */
export function recordsGraph(inputs: readonly Tensor[]): boolean {
  return isGradEnabled() && inputs.some((t) => t.requiresGrad);
}

/** Build an op's output, recording the node when grad mode is on and an input needs grad. */
export function makeOutput(
  backend: Backend,
  storage: Storage,
  shape: readonly number[],
  node: Omit<GradNode, 'inputs'> & { inputs: readonly Tensor[] },
): Tensor {
  return new Tensor(storage, shape, backend, recordsGraph(node.inputs) ? node : null);
}
