// AdamW (Loshchilov & Hutter; PyTorch's torch.optim.AdamW) with parameter groups.
// Per step t, for each parameter with a gradient (the backend's fused adamwInPlace kernel):
//   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²
//   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
// bf16 / f16 parameters keep an f32 master copy and f32 moments; the update runs on the
// master and the parameter gets it rounded once (mixed-precision training's master weights).
import { type DType, isHalfDType } from '../backend/types.js';
import { sameShape, shapeToString } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** A group of parameters with optional overrides of the optimiser's defaults. */
export interface ParamGroupInput {
  params: Iterable<Tensor>;
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** A group as the optimiser holds it; schedulers change `lr`. */
export interface ParamGroup {
  params: Tensor[];
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

export interface AdamWParamState {
  /** Steps taken by this parameter (it skips steps where it has no grad). */
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
  /** f32 master weights of a bf16 / f16 parameter (moments are f32 too). */
  master?: Tensor;
}

/** Everything needed to resume exactly; parameters are keyed by index in group order. */
export interface AdamWStateDict {
  state: Record<number, AdamWParamState>;
  paramGroups: { lr: number; betas: [number, number]; eps: number; weightDecay: number; params: number[] }[];
  /** step() calls so far. */
  stepCount: number;
}

function checkHyper(where: string, g: Omit<ParamGroup, 'params'>): void {
  if (!(Number.isFinite(g.lr) && g.lr >= 0)) throw new RangeError(`${where}: lr must be a finite number >= 0 (got ${g.lr})`);
  const [b1, b2] = g.betas;
  if (!(b1 >= 0 && b1 < 1)) throw new RangeError(`${where}: betas[0] must be in [0, 1) (got ${b1})`);
  if (!(b2 >= 0 && b2 < 1)) throw new RangeError(`${where}: betas[1] must be in [0, 1) (got ${b2})`);
  if (!(g.eps >= 0)) throw new RangeError(`${where}: eps must be >= 0 (got ${g.eps})`);
  if (!(Number.isFinite(g.weightDecay) && g.weightDecay >= 0)) {
    throw new RangeError(`${where}: weightDecay must be a finite number >= 0 (got ${g.weightDecay})`);
  }
}

function isGroupList(x: Iterable<Tensor> | readonly ParamGroupInput[]): x is readonly ParamGroupInput[] {
  return Array.isArray(x) && x.length > 0 && !(x[0] instanceof Tensor);
}

export class AdamW {
  readonly paramGroups: ParamGroup[] = [];
  readonly defaults: Required<AdamWOptions>;
  stepCount = 0;
  private readonly state = new Map<Tensor, AdamWParamState>();

  constructor(params: Iterable<Tensor> | readonly ParamGroupInput[], options: AdamWOptions) {
    this.defaults = { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, ...options };
    const groups = isGroupList(params) ? params : [{ params }];
    groups.forEach((g) => this.addParamGroup(g));
    if (this.paramGroups.every((g) => g.params.length === 0)) throw new RangeError('AdamW: got an empty parameter list');
  }

  addParamGroup(input: ParamGroupInput): ParamGroup {
    const where = `AdamW param group ${this.paramGroups.length}`;
    const group: ParamGroup = {
      params: [...input.params],
      lr: input.lr ?? this.defaults.lr,
      betas: [...(input.betas ?? this.defaults.betas)],
      eps: input.eps ?? this.defaults.eps,
      weightDecay: input.weightDecay ?? this.defaults.weightDecay,
    };
    checkHyper(where, group);
    const existing = new Set(this.paramGroups.flatMap((g) => g.params));
    for (const [i, p] of group.params.entries()) {
      if (!(p instanceof Tensor)) throw new TypeError(`${where}: params[${i}] is not a Tensor`);
      if (!p.isLeaf) throw new TypeError(`${where}: params[${i}] is not a leaf tensor (an op produced it); optimise leaves only`);
      if (existing.has(p)) throw new Error(`${where}: params[${i}] already appears in an earlier group (or twice in this one)`);
      existing.add(p);
    }
    this.paramGroups.push(group);
    return group;
  }

  /** One AdamW update of every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    for (const [gi, group] of this.paramGroups.entries()) {
      checkHyper(`AdamW param group ${gi}`, group);
      const [beta1, beta2] = group.betas;
      for (const p of group.params) {
        const g = p.grad;
        if (!g) continue;
        if (!sameShape(g.shape, p.shape) || g.dtype !== p.dtype || g.backend !== p.backend) {
          throw new Error(
            `AdamW: grad ${shapeToString(g.shape)} ${g.dtype} does not match its parameter ${shapeToString(p.shape)} ${p.dtype}${g.backend !== p.backend ? ' (different backends)' : ''}`,
          );
        }
        let s = this.state.get(p);
        if (!s) {
          s = { step: 0, expAvg: zerosOf(p), expAvgSq: zerosOf(p), ...(isHalfDType(p.dtype) ? { master: masterOf(p) } : {}) };
          this.state.set(p, s);
        }
        s.step++;
        const hyper = {
          lr: group.lr,
          beta1,
          beta2,
          eps: group.eps,
          weightDecay: group.weightDecay,
          biasCorrection1: 1 - beta1 ** s.step,
          biasCorrection2: 1 - beta2 ** s.step,
        };
        if (s.master) {
          // low-precision parameter: update the f32 master with the f32 gradient, then round once into p
          const b = p.backend;
          b.adamwInPlace(s.master.storage, b.cast(g.storage, 'f32'), s.expAvg.storage, s.expAvgSq.storage, hyper);
          p.storage = b.cast(s.master.storage, p.dtype);
          continue;
        }
        p.backend.adamwInPlace(p.storage, g.storage, s.expAvg.storage, s.expAvgSq.storage, hyper);
      }
    }
  }

  /** Drop every parameter's gradient. */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.zeroGrad();
  }

  /** A snapshot (moment tensors are copies, later steps do not change it). */
  stateDict(): AdamWStateDict {
    const state: Record<number, AdamWParamState> = {};
    let index = 0;
    const paramGroups = this.paramGroups.map((g) => {
      const params: number[] = [];
      for (const p of g.params) {
        const s = this.state.get(p);
        if (s) {
          state[index] = {
            step: s.step,
            expAvg: copyOf(s.expAvg),
            expAvgSq: copyOf(s.expAvgSq),
            ...(s.master ? { master: copyOf(s.master) } : {}),
          };
        }
        params.push(index++);
      }
      return { lr: g.lr, betas: [...g.betas] as [number, number], eps: g.eps, weightDecay: g.weightDecay, params };
    });
    return { state, paramGroups, stepCount: this.stepCount };
  }

  /** Restore a snapshot taken from an optimiser over parameters of the same groups and shapes. */
  loadStateDict(sd: AdamWStateDict): void {
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new Error(
        `AdamW.loadStateDict: the state has ${sd.paramGroups.length} param groups, this optimiser has ${this.paramGroups.length}`,
      );
    }
    const params = this.paramGroups.flatMap((g) => g.params);
    sd.paramGroups.forEach((sg, gi) => {
      const n = this.paramGroups[gi]!.params.length;
      if (sg.params.length !== n) {
        throw new Error(`AdamW.loadStateDict: param group ${gi} has ${sg.params.length} params in the state, ${n} here`);
      }
    });
    const next = new Map<Tensor, AdamWParamState>();
    for (const [key, s] of Object.entries(sd.state)) {
      const i = Number(key);
      const p = params[i];
      if (!p) throw new Error(`AdamW.loadStateDict: state for parameter index ${key}, but there are ${params.length} parameters`);
      for (const [name, t] of [
        ['expAvg', s.expAvg],
        ['expAvgSq', s.expAvgSq],
      ] as const) {
        if (!sameShape(t.shape, p.shape)) {
          throw new Error(
            `AdamW.loadStateDict: ${name} of parameter ${i} has shape ${shapeToString(t.shape)}, the parameter has ${shapeToString(p.shape)}`,
          );
        }
      }
      if (isHalfDType(p.dtype)) {
        // f32 moments and master (a state saved without a master starts from the parameter itself)
        const master = s.master ? copyFor(s.master, p, 'f32') : masterOf(p);
        next.set(p, { step: s.step, expAvg: copyFor(s.expAvg, p, 'f32'), expAvgSq: copyFor(s.expAvgSq, p, 'f32'), master });
        continue;
      }
      next.set(p, { step: s.step, expAvg: copyFor(s.expAvg, p), expAvgSq: copyFor(s.expAvgSq, p) });
    }
    sd.paramGroups.forEach((sg, gi) => {
      const g = this.paramGroups[gi]!;
      const hyper = { lr: sg.lr, betas: [...sg.betas] as [number, number], eps: sg.eps, weightDecay: sg.weightDecay };
      checkHyper(`AdamW.loadStateDict: param group ${gi}`, hyper);
      Object.assign(g, hyper);
    });
    this.state.clear();
    for (const [p, s] of next) this.state.set(p, s);
    this.stepCount = sd.stepCount;
  }
}

/** Zero moments: in p's dtype, f32 for a bf16 / f16 parameter. */
function zerosOf(p: Tensor): Tensor {
  return new Tensor(p.backend.full(isHalfDType(p.dtype) ? 'f32' : p.dtype, p.size, 0), p.shape, p.backend);
}

/** The f32 master copy of a bf16 / f16 parameter. */
function masterOf(p: Tensor): Tensor {
  return new Tensor(p.backend.cast(p.storage, 'f32'), p.shape, p.backend);
}

function copyOf(t: Tensor): Tensor {
  return new Tensor(t.backend.copy(t.storage), t.shape, t.backend);
}

/** A copy of `t` on p's backend, in p's dtype (or `dtype`). */
function copyFor(t: Tensor, p: Tensor, dtype: DType = p.dtype): Tensor {
  const b = p.backend;
  let s = t.backend === b ? b.copy(t.storage) : b.fromArray(t.dataSync().slice());
  if (b.dtypeOf(s) !== dtype) s = b.cast(s, dtype);
  return new Tensor(s, p.shape, b);
}
