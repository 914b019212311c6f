// The multi-scope loss API (celmoe-vp's CELMoELossAPI): global losses over the whole output,
// level losses over one level, bridge losses over a parent and a child level, plus the losses
// experts report; compute() returns a differentiable total, a flat scalar dict and the terms.
import { zeros } from '../../ops/creation.js';
import { reshape } from '../../ops/shape.js';
import { shapeToString } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { HierarchyOutput, LevelOutput } from './types.js';

export type GlobalLossFn<T = unknown, C = unknown> = (output: HierarchyOutput, targets: T, context: C) => Tensor;
export type LevelLossFn<T = unknown, C = unknown> = (level: LevelOutput, targets: T, context: C, output: HierarchyOutput) => Tensor;
export type BridgeLossFn<T = unknown, C = unknown> = (
  parent: LevelOutput,
  child: LevelOutput,
  targets: T,
  context: C,
  output: HierarchyOutput,
) => Tensor;

export type LossScope = 'global' | 'level' | 'bridge' | 'expert';

export interface LossOptions {
  /** Multiplies the term in the total (default 1). */
  weight?: number;
}

/** One computed term. */
export interface LossTerm {
  /** Unique key, also its key in LossBundle.scalars: 'global/<name>', 'level/<level>/<name>',
   *  'bridge/<parent>-><child>/<name>', 'expert/<level>/<expert>/<name>'. */
  key: string;
  name: string;
  scope: LossScope;
  /** [] (global), [level] (level, expert), [parent, child] (bridge). */
  levels: string[];
  /** The reporting expert (scope 'expert' only). */
  expert: string | null;
  weight: number;
  /** The loss as its function returned it, as a 0-d tensor (unweighted, differentiable). */
  value: Tensor;
  /** weight · value (differentiable); the total is the sum of these. */
  weighted: Tensor;
}

export interface LossBundle {
  /** Σ weighted over the terms, in term order (0-d, differentiable; a constant 0 when there are none). */
  total: Tensor;
  /** key -> unweighted value of every term, and 'total' -> the total, as plain numbers for logs. */
  scalars: Record<string, number>;
  terms: LossTerm[];
}

export interface LossAPIOptions {
  /** Add the ExpertResult.losses of the experts that ran, times their lossWeight (default true). */
  includeExpertLosses?: boolean;
}

type Registered<T, C> =
  | { scope: 'global'; key: string; name: string; weight: number; fn: GlobalLossFn<T, C> }
  | { scope: 'level'; key: string; name: string; weight: number; level: string; fn: LevelLossFn<T, C> }
  | { scope: 'bridge'; key: string; name: string; weight: number; parent: string; child: string; fn: BridgeLossFn<T, C> };

function checkName(what: string, v: string): void {
  if (typeof v !== 'string' || v.length === 0) throw new TypeError(`LossAPI.${what}: name must be a non-empty string (got ${String(v)})`);
}

function checkWeight(what: string, key: string, w: number): number {
  if (!Number.isFinite(w)) throw new RangeError(`LossAPI.${what}: weight of '${key}' must be a finite number (got ${w})`);
  return w;
}

export class LossAPI<T = unknown, C = unknown> {
  private readonly registered: Registered<T, C>[] = [];
  readonly includeExpertLosses: boolean;

  constructor(options: LossAPIOptions = {}) {
    this.includeExpertLosses = options.includeExpertLosses ?? true;
  }

  private push(r: Registered<T, C>, what: string): this {
    if (this.registered.some((o) => o.key === r.key)) throw new Error(`LossAPI.${what}: a loss '${r.key}' is already registered`);
    checkWeight(what, r.key, r.weight);
    this.registered.push(r);
    return this;
  }

  /** A loss over the whole output (e.g. the task loss on fusedHidden). */
  addGlobal(name: string, fn: GlobalLossFn<T, C>, options: LossOptions = {}): this {
    checkName('addGlobal', name);
    return this.push({ scope: 'global', key: `global/${name}`, name, weight: options.weight ?? 1, fn }, 'addGlobal');
  }

  /** A loss over one level's output (e.g. a parent regulariser, a child specialisation loss). */
  addLevel(level: string, name: string, fn: LevelLossFn<T, C>, options: LossOptions = {}): this {
    checkName('addLevel', name);
    checkName('addLevel', level);
    return this.push({ scope: 'level', key: `level/${level}/${name}`, name, weight: options.weight ?? 1, level, fn }, 'addLevel');
  }

  /** A loss between a parent level and a later (child) level. */
  addBridge(parent: string, child: string, name: string, fn: BridgeLossFn<T, C>, options: LossOptions = {}): this {
    checkName('addBridge', name);
    checkName('addBridge', parent);
    checkName('addBridge', child);
    if (parent === child) throw new RangeError(`LossAPI.addBridge: parent and child must be different levels (both '${parent}')`);
    return this.push(
      { scope: 'bridge', key: `bridge/${parent}->${child}/${name}`, name, weight: options.weight ?? 1, parent, child, fn },
      'addBridge',
    );
  }

  /** Keys of the registered losses, in registration order. */
  keys(): string[] {
    return this.registered.map((r) => r.key);
  }

  /**
   * Every registered loss whose levels ran (a term naming a disabled level is skipped; one naming
   * no level of the model is an error), in registration order, then the expert-reported losses
   * (levels in order, experts in declaration order).
   */
  compute(output: HierarchyOutput, targets?: T, context?: C): LossBundle {
    const ran = new Map(output.levels.map((l) => [l.name, l]));
    const known = (level: string, key: string): LevelOutput | null => {
      const l = ran.get(level);
      if (l) return l;
      if (output.disabledLevels.includes(level)) return null;
      const all = [...output.levels.map((o) => o.name), ...output.disabledLevels];
      throw new RangeError(
        `LossAPI.compute: '${key}' names level '${level}', which the model does not have (levels: ${all.map((n) => `'${n}'`).join(', ')})`,
      );
    };
    const dtype = output.fusedHidden.dtype;
    const terms: LossTerm[] = [];
    const add = (t: Omit<LossTerm, 'value' | 'weighted'>, raw: Tensor): void => {
      if (!raw || typeof raw !== 'object' || typeof (raw as Tensor).size !== 'number') {
        throw new TypeError(`LossAPI.compute: '${t.key}' must return a Tensor (got ${String(raw)})`);
      }
      if (raw.size !== 1)
        throw new RangeError(`LossAPI.compute: '${t.key}' must return a one-element tensor (got ${shapeToString(raw.shape)})`);
      const value = reshape(raw, []).to(dtype);
      terms.push({ ...t, value, weighted: t.weight === 1 ? value : value.mul(t.weight) });
    };
    const tg = targets as T;
    const cx = context as C;
    for (const r of this.registered) {
      if (r.scope === 'global') {
        add({ key: r.key, name: r.name, scope: 'global', levels: [], expert: null, weight: r.weight }, r.fn(output, tg, cx));
      } else if (r.scope === 'level') {
        const l = known(r.level, r.key);
        if (l)
          add({ key: r.key, name: r.name, scope: 'level', levels: [r.level], expert: null, weight: r.weight }, r.fn(l, tg, cx, output));
      } else {
        const p = known(r.parent, r.key);
        const c = known(r.child, r.key);
        if (!p || !c) continue;
        if (p.index >= c.index) {
          throw new RangeError(`LossAPI.compute: '${r.key}': parent '${r.parent}' must come before child '${r.child}' in the hierarchy`);
        }
        add(
          { key: r.key, name: r.name, scope: 'bridge', levels: [r.parent, r.child], expert: null, weight: r.weight },
          r.fn(p, c, tg, cx, output),
        );
      }
    }
    if (this.includeExpertLosses) {
      for (const l of output.levels) {
        for (const e of l.expertLosses) {
          const key = `expert/${l.name}/${e.expert}/${e.name}`;
          add({ key, name: e.name, scope: 'expert', levels: [l.name], expert: e.expert, weight: e.weight }, e.value);
        }
      }
    }
    let total: Tensor | null = null;
    for (const t of terms) total = total ? total.add(t.weighted) : t.weighted;
    total ??= zeros([], { dtype });
    const scalars: Record<string, number> = {};
    for (const t of terms) scalars[t.key] = t.value.item();
    scalars['total'] = total.item();
    return { total, scalars, terms };
  }
}

/** celmoe-vp's name for the same class. */
export { LossAPI as CELMoELossAPI };
