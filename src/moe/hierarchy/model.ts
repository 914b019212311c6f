// HierarchicalMoE (celmoe-vp's HierarchicalCELMoE): enabled levels run in order, each on the
// previous level's output; inside a level the samples routed to one expert run as one
// sub-batch and are scattered back in batch order; the level outputs are fused.
import type { FloatDType } from '../../backend/types.js';
import { fromArray, zeros } from '../../ops/creation.js';
import { dropout } from '../../ops/dropout.js';
import { Module } from '../../nn/module.js';
import { defaultGenerator, type Generator } from '../../tensor/random.js';
import { shapeToString } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { type HierarchyConfig, type HierarchyLevelConfig, parseHierarchyConfig } from './config.js';
import { type HierarchyFusion, LearnedFusion, MeanFusion } from './fusion.js';
import { type HierarchyRouting, checkRoutingKeys, groupByExpert, resolveLevelRouting } from './routing.js';
import type { ExpertFactory, ExpertLoss, HierarchyExpert, HierarchyOutput, LevelOutput } from './types.js';

export interface HierarchicalMoEOptions {
  /** Replaces the fusion chosen by config.useLearnedFusion. */
  fusion?: HierarchyFusion;
  /** dtype of the built-in fusion's parameters (default f32). */
  dtype?: FloatDType;
  /** Generator for fusion dropout (default: the default generator). */
  generator?: Generator;
}

export interface HierarchyForwardOptions<C = unknown> {
  /** level -> batch-aligned expert names (or one name for all); see resolveLevelRouting. */
  routing?: HierarchyRouting;
  /** Passed unchanged to every expert as batch.context.user. */
  context?: C;
  /** [B, ...] with the hidden's leading shape (1 real, 0 padding); sliced per sub-batch. */
  mask?: Tensor | null;
  /** Shared mutable state for the experts of this forward (default: a fresh {}). */
  state?: Record<string, unknown>;
}

/** One level's experts (a Module so their parameters are found: `levels.<i>.experts.<j>.…`). */
export class HierarchyLevel extends Module {
  readonly experts: HierarchyExpert[];

  constructor(
    readonly cfg: HierarchyLevelConfig,
    experts: HierarchyExpert[],
  ) {
    super();
    this.experts = experts;
  }

  expert(name: string): HierarchyExpert {
    const i = this.cfg.experts.findIndex((e) => e.name === name);
    if (i < 0)
      throw new RangeError(
        `level '${this.cfg.name}' has no expert '${name}' (experts: ${this.cfg.experts.map((e) => `'${e.name}'`).join(', ')})`,
      );
    return this.experts[i]!;
  }
}

function isExpert(m: unknown): m is HierarchyExpert {
  return m instanceof Module && typeof (m as { forward?: unknown }).forward === 'function';
}

export class HierarchicalMoE extends Module {
  readonly config: HierarchyConfig;
  readonly levels: HierarchyLevel[];
  readonly fusion: HierarchyFusion;
  private readonly enabled: boolean[];
  private readonly generator: Generator;

  constructor(config: HierarchyConfig, expertFactory: ExpertFactory, options: HierarchicalMoEOptions = {}) {
    super();
    this.config = parseHierarchyConfig(config);
    this.levels = this.config.levels.map((lc) => {
      const experts = lc.experts.map((ec) => {
        const e: unknown = expertFactory(lc.name, ec.name, ec.metadata);
        if (!isExpert(e)) {
          throw new TypeError(
            `expert factory: for level '${lc.name}' expert '${ec.name}' it returned ${String(e)}; expected a moekit Module with forward(batch: ExpertBatch): ExpertResult`,
          );
        }
        return e;
      });
      const shared = experts.find((e, i) => experts.indexOf(e) !== i);
      if (shared) throw new Error(`expert factory: level '${lc.name}' got the same module for two experts; build one module per expert`);
      return new HierarchyLevel(lc, experts);
    });
    const L = this.config.levels.length;
    this.fusion =
      options.fusion ?? (this.config.useLearnedFusion ? new LearnedFusion(L, { dtype: options.dtype ?? 'f32' }) : new MeanFusion());
    this.enabled = this.config.levels.map((l) => l.enabled);
    this.generator = options.generator ?? defaultGenerator;
  }

  private levelIndex(name: string): number {
    const i = this.config.levels.findIndex((l) => l.name === name);
    if (i < 0) throw new RangeError(`no level '${name}' (levels: ${this.config.levels.map((l) => `'${l.name}'`).join(', ')})`);
    return i;
  }

  /** The module of one expert. */
  expert(levelName: string, expertName: string): HierarchyExpert {
    return this.levels[this.levelIndex(levelName)]!.expert(expertName);
  }

  /** Names of the levels the forward runs, in order. */
  enabledLevels(): string[] {
    return this.config.levels.filter((_, i) => this.enabled[i]).map((l) => l.name);
  }

  isLevelEnabled(name: string): boolean {
    return this.enabled[this.levelIndex(name)]!;
  }

  /** Switch a level on or off at run time (staged training); the config's flag is the initial value. */
  setLevelEnabled(name: string, flag: boolean): this {
    const i = this.levelIndex(name);
    if (!flag && this.enabled.filter(Boolean).length === 1 && this.enabled[i]) {
      throw new RangeError(`setLevelEnabled: '${name}' is the only enabled level; at least one level must run`);
    }
    this.enabled[i] = flag;
    return this;
  }

  /** hidden [B, ..., hiddenSize] -> the fused hidden and every enabled level's output. */
  forward<C = unknown>(hidden: Tensor, options: HierarchyForwardOptions<C> = {}): HierarchyOutput {
    const H = this.config.hiddenSize;
    if (hidden.ndim < 2 || hidden.shape[hidden.ndim - 1] !== H) {
      throw new RangeError(`HierarchicalMoE: hidden must be [batch, ..., ${H}] (got ${shapeToString(hidden.shape)})`);
    }
    const B = hidden.shape[0]!;
    const mask = options.mask ?? null;
    if (mask && (mask.ndim < 1 || mask.ndim > hidden.ndim - 1 || mask.shape.some((d, i) => d !== hidden.shape[i]))) {
      throw new RangeError(
        `HierarchicalMoE: mask ${shapeToString(mask.shape)} must have a leading part of the hidden's shape ${shapeToString(hidden.shape)} (e.g. [B] or [B, T])`,
      );
    }
    const routing = options.routing ?? {};
    checkRoutingKeys(this.config, routing);
    const state = options.state ?? {};

    const levels: LevelOutput[] = [];
    let x = hidden;
    this.config.levels.forEach((lc, li) => {
      if (!this.enabled[li]) return;
      const level = this.levels[li]!;
      const order = lc.experts.map((e) => e.name);
      const names = resolveLevelRouting(lc, routing[lc.name], B);
      const groups = groupByExpert(names, order);
      const expertLosses: ExpertLoss[] = [];
      const aux: Record<string, Record<string, unknown>> = {};
      let out: Tensor | null = null;
      for (const g of groups) {
        const ei = order.indexOf(g.expert);
        const ec = lc.experts[ei]!;
        const whole = g.indices.length === B; // rows ascending, so this is 0..B-1 in order
        const idx = whole ? null : fromArray(Int32Array.from(g.indices), [g.indices.length]);
        let sub = idx ? x.indexSelect(0, idx) : x;
        if (ec.stopGradientFromParent) sub = sub.detach();
        const res = level.experts[ei]!.forward({
          hidden: sub,
          mask: mask && idx ? mask.indexSelect(0, idx) : mask,
          state,
          context: {
            levelName: lc.name,
            levelIndex: li,
            expertName: ec.name,
            sampleIndices: g.indices,
            batchSize: B,
            user: options.context as C,
          },
        });
        const where = `level '${lc.name}' expert '${ec.name}'`;
        if (!res || typeof res !== 'object' || !res.hidden)
          throw new TypeError(`${where}: forward must return an ExpertResult { hidden, losses?, aux? }`);
        if (res.hidden.ndim !== sub.ndim || res.hidden.shape.some((d, i) => d !== sub.shape[i]) || res.hidden.dtype !== sub.dtype) {
          throw new RangeError(
            `${where}: returned hidden ${shapeToString(res.hidden.shape)} ${res.hidden.dtype}; expected its input's shape ${shapeToString(sub.shape)} ${sub.dtype}`,
          );
        }
        for (const [name, value] of Object.entries(res.losses ?? {})) {
          if (value.size !== 1)
            throw new RangeError(`${where}: loss '${name}' must be a one-element tensor (got ${shapeToString(value.shape)})`);
          expertLosses.push({ expert: ec.name, name, value, weight: ec.lossWeight });
        }
        if (res.aux) aux[ec.name] = res.aux;
        if (idx) {
          out ??= zeros(x.shape, { dtype: x.dtype });
          out = out.indexAdd(0, idx, res.hidden);
        } else {
          out = res.hidden;
        }
      }
      levels.push({ name: lc.name, index: li, input: x, hidden: out!, experts: names, expertLosses, aux });
      x = out!;
    });

    const fused = this.fusion.forward({
      hiddens: levels.map((l) => l.hidden),
      levelNames: levels.map((l) => l.name),
      levelIndices: levels.map((l) => l.index),
    });
    if (fused.hidden.ndim !== hidden.ndim || fused.hidden.shape.some((d, i) => d !== hidden.shape[i])) {
      throw new RangeError(
        `fusion returned ${shapeToString(fused.hidden.shape)}; expected the hidden's shape ${shapeToString(hidden.shape)}`,
      );
    }
    const p = this.config.fusionDropout;
    const fusedHidden = this.training && p > 0 ? dropout(fused.hidden, p, true, this.generator) : fused.hidden;
    const disabledLevels = this.config.levels.filter((_, i) => !this.enabled[i]).map((l) => l.name);
    return {
      fusedHidden,
      levels,
      fusionWeights: fused.weights,
      disabledLevels,
      level(name: string): LevelOutput {
        const l = levels.find((o) => o.name === name);
        if (l) return l;
        const why = disabledLevels.includes(name) ? 'it is disabled' : 'no such level';
        throw new RangeError(`HierarchyOutput.level('${name}'): ${why} (ran: ${levels.map((o) => `'${o.name}'`).join(', ')})`);
      },
    };
  }
}

/** celmoe-vp's name for the same class. */
export { HierarchicalMoE as HierarchicalCELMoE };
