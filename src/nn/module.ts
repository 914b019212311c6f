// Parameter and Module: the PyTorch nn.Module feel, with submodules found by reflection.
//
// Discovery rule (what namedParameters / children / stateDict see): a module's OWN
// ENUMERABLE properties, in `Object.keys` order, that hold
//   - a Parameter                    -> a parameter named `<prop>`
//   - a Module                       -> a child named `<prop>`
//   - an array whose items are all Modules (a "ModuleList") -> children `<prop>.0`, `<prop>.1`, ...
// Everything else (numbers, configs, plain Tensors, Maps, null) is ignored; persistent
// non-trainable tensors go through `registerBuffer`. `Object.keys` order is definition
// order for non-numeric keys; with ES2022 class fields that is the field declaration order
// (base-class fields first), then properties first assigned in the constructor.
// Names are dotted paths, PyTorch style: `blocks.0.attn.qkv.weight`.
import { type FloatDType, isFloatDType } from '../backend/types.js';
import { noGrad } from '../tensor/autograd.js';
import { sameShape, shapeToString } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
// Modules use the tensor method API (x.matmul(w).add(b)); make sure it is installed.
import '../ops/methods.js';

/** A trainable leaf tensor. Shares the storage of the tensor it wraps (no copy). */
export class Parameter extends Tensor {
  constructor(data: Tensor, requiresGrad = true) {
    super(data.storage, data.shape, data.backend);
    if (requiresGrad && !isFloatDType(data.dtype)) {
      throw new TypeError(`Parameter: only floating tensors can be trainable (dtype is ${data.dtype}; pass requiresGrad=false)`);
    }
    this.requiresGrad = requiresGrad;
  }
}

/** A module list: a plain array of modules held in a property (see the discovery rule). */
export type ModuleList<M extends Module = Module> = M[];

/** A module with a one-tensor-in, one-tensor-out forward (FFNs, norms, activations). */
export interface UnaryModule extends Module {
  forward(x: Tensor): Tensor;
}

export type StateDict = Record<string, Tensor>;

export interface LoadStateDictOptions {
  /** Fail on missing or unexpected keys (default true). Shape mismatches always fail. */
  strict?: boolean;
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

function isModuleArray(v: unknown): v is Module[] {
  return Array.isArray(v) && v.length > 0 && v.every((m) => m instanceof Module);
}

const BUFFERS = new WeakMap<Module, Map<string, Tensor>>();

/** Base class: subclasses hold Parameters / Modules as properties and define a typed `forward`. */
export class Module {
  /** Training mode (dropout on). Set through train() / eval(). */
  training = true;

  // registered buffers live outside the object so the discovery walk never sees them
  private get buffers(): Map<string, Tensor> {
    const m = BUFFERS.get(this) ?? new Map<string, Tensor>();
    BUFFERS.set(this, m);
    return m;
  }

  /** Register a persistent non-trainable tensor (saved in stateDict under its name). */
  registerBuffer(name: string, tensor: Tensor): Tensor {
    if (!/^[^.]+$/.test(name)) throw new RangeError(`registerBuffer: name '${name}' must be non-empty and contain no '.'`);
    this.buffers.set(name, tensor);
    return tensor;
  }

  /** A registered buffer (after loadStateDict it holds the loaded values). */
  buffer(name: string): Tensor {
    const t = this.buffers.get(name);
    if (!t) throw new RangeError(`buffer: no buffer named '${name}' (registered: ${[...this.buffers.keys()].join(', ') || 'none'})`);
    return t;
  }

  /** Direct children with their property names (`blocks.0` for array items). */
  *namedChildren(): Generator<[string, Module]> {
    for (const [key, value] of Object.entries(this)) {
      if (value instanceof Module) yield [key, value];
      else if (isModuleArray(value)) for (let i = 0; i < value.length; i++) yield [`${key}.${i}`, value[i]!];
    }
  }

  children(): Module[] {
    return [...this.namedChildren()].map(([, m]) => m);
  }

  /** This module ('' name) and every descendant, depth first, each module once. */
  *namedModules(prefix = '', seen: Set<Module> = new Set()): Generator<[string, Module]> {
    if (seen.has(this)) return;
    seen.add(this);
    yield [prefix, this];
    for (const [name, child] of this.namedChildren()) {
      yield* child.namedModules(prefix ? `${prefix}.${name}` : name, seen);
    }
  }

  modules(): Module[] {
    return [...this.namedModules()].map(([, m]) => m);
  }

  /** Parameters held directly by this module (not its children). */
  *ownNamedParameters(): Generator<[string, Parameter]> {
    for (const [key, value] of Object.entries(this)) if (value instanceof Parameter) yield [key, value];
  }

  /** Every parameter with its dotted name; a parameter shared by two modules appears once (first name). */
  namedParameters(): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    const seen = new Set<Parameter>();
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, p] of m.ownNamedParameters()) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([prefix ? `${prefix}.${name}` : name, p]);
      }
    }
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, t] of m.buffers) out.push([prefix ? `${prefix}.${name}` : name, t]);
    }
    return out;
  }

  /** Total element count of the (distinct) parameters. */
  numParameters(options: { trainableOnly?: boolean } = {}): number {
    return this.parameters()
      .filter((p) => !options.trainableOnly || p.requiresGrad)
      .reduce((n, p) => n + p.size, 0);
  }

  /** Set training mode on this module and every descendant. */
  train(flag = true): this {
    for (const m of this.modules()) m.training = flag;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Call fn on every descendant (post-order: children first) and then on this module, as PyTorch. */
  apply(fn: (m: Module) => void, seen: Set<Module> = new Set()): this {
    if (seen.has(this)) return this;
    seen.add(this);
    for (const child of this.children()) child.apply(fn, seen);
    fn(this);
    return this;
  }

  /**
   * Cast every floating parameter and buffer to `dtype` in place (PyTorch's `module.to(dtype)`):
   * the same tensor objects are kept, their gradients dropped. Integer buffers stay as they are.
   */
  to(dtype: FloatDType): this {
    if (!isFloatDType(dtype)) throw new TypeError(`Module.to: dtype must be one of f32, f64, bf16, f16 (got ${String(dtype)})`);
    const seen = new Set<Tensor>();
    for (const [, t] of [...this.namedParameters(), ...this.namedBuffers()]) {
      if (seen.has(t) || !isFloatDType(t.dtype) || t.dtype === dtype) continue;
      seen.add(t);
      t.setStorage_(t.backend.cast(t.storage, dtype));
    }
    return this;
  }

  /** name -> tensor for parameters and buffers (detached views sharing the storage). */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [name, p] of this.namedParameters()) out[name] = p.detach();
    for (const [name, t] of this.namedBuffers()) out[name] = t.detach();
    return out;
  }

  /**
   * Copy values from `dict` into the parameters and buffers (the same Parameter objects are
   * kept, so optimisers holding them stay valid). Values are cast to each target's dtype.
   */
  loadStateDict(dict: StateDict | Map<string, Tensor>, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = options.strict ?? true;
    const source = dict instanceof Map ? dict : new Map(Object.entries(dict));
    const targets = new Map<string, Tensor>([...this.namedParameters(), ...this.namedBuffers()]);
    const missingKeys = [...targets.keys()].filter((k) => !source.has(k));
    const unexpectedKeys = [...source.keys()].filter((k) => !targets.has(k));
    const problems: string[] = [];
    for (const [name, target] of targets) {
      const src = source.get(name);
      if (src && !sameShape(src.shape, target.shape)) {
        problems.push(
          `size mismatch for '${name}': checkpoint has shape ${shapeToString(src.shape)}, the module has ${shapeToString(target.shape)}`,
        );
      }
    }
    if (strict) {
      if (missingKeys.length > 0) problems.push(`missing keys: ${missingKeys.map((k) => `'${k}'`).join(', ')}`);
      if (unexpectedKeys.length > 0) problems.push(`unexpected keys: ${unexpectedKeys.map((k) => `'${k}'`).join(', ')}`);
    }
    if (problems.length > 0) {
      throw new Error(`loadStateDict(${this.constructor.name}): ${problems.join('; ')}`);
    }
    noGrad(() => {
      for (const [name, target] of targets) {
        const src = source.get(name);
        if (src) target.storage = copyStorageFor(src, target);
      }
    });
    return { missingKeys, unexpectedKeys };
  }
}

/** A fresh storage on `target`'s backend with `src`'s values in `target`'s dtype. */
function copyStorageFor(src: Tensor, target: Tensor): Tensor['storage'] {
  const b = target.backend;
  let s = src.backend === b ? b.copy(src.storage) : b.fromArray(src.dataSync().slice());
  if (b.dtypeOf(s) !== target.dtype) s = b.cast(s, target.dtype);
  return s;
}
