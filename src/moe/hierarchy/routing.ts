// Per-sample named routing: resolve a level's entry of the routing map to one expert name per
// sample, and group samples by expert (celmoe-vp's utils/routing_*).
import type { HierarchyConfig, HierarchyLevelConfig } from './config.js';

/**
 * level -> the expert of each sample (batch-aligned), or one name for the whole batch.
 * A null entry means "this sample takes the level's fallback expert".
 */
export type LevelRouting = readonly (string | null | undefined)[] | string;
export type HierarchyRouting = Readonly<Record<string, LevelRouting | undefined>>;

export class RoutingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RoutingError';
  }
}

function expertList(level: HierarchyLevelConfig): string {
  return level.experts.map((e) => `'${e.name}'`).join(', ');
}

/**
 * The expert of every sample of one level:
 *  - entry absent: the only expert, else the fallback, else an error;
 *  - a string: that expert for every sample (broadcast);
 *  - an array of batchSize names: per sample; null/undefined takes the fallback (an error without one);
 *  - an unknown name is always an error that lists the level's experts (the fallback does not hide typos).
 */
export function resolveLevelRouting(level: HierarchyLevelConfig, entry: LevelRouting | undefined, batchSize: number): string[] {
  const known = new Set(level.experts.map((e) => e.name));
  const check = (n: string, where: string): string => {
    if (!known.has(n)) {
      throw new RoutingError(
        `routing['${level.name}']${where}: unknown expert '${n}'; level '${level.name}' has experts ${expertList(level)}`,
      );
    }
    return n;
  };
  if (entry === undefined || entry === null) {
    const only = level.experts.length === 1 ? level.experts[0]!.name : level.fallbackExpert;
    if (only === null) {
      throw new RoutingError(
        `routing['${level.name}'] is required: level '${level.name}' has ${level.experts.length} experts (${expertList(level)}) and no fallbackExpert`,
      );
    }
    return new Array<string>(batchSize).fill(only);
  }
  if (typeof entry === 'string') return new Array<string>(batchSize).fill(check(entry, ''));
  if (!Array.isArray(entry)) throw new RoutingError(`routing['${level.name}'] must be an expert name or an array of ${batchSize} names`);
  if (entry.length !== batchSize) {
    throw new RoutingError(
      `routing['${level.name}'] has ${entry.length} entries but the batch has ${batchSize} samples (routing is batch-aligned)`,
    );
  }
  return entry.map((n, i) => {
    if (n === null || n === undefined) {
      if (level.fallbackExpert === null) {
        throw new RoutingError(
          `routing['${level.name}'][${i}] is ${String(n)} but level '${level.name}' has no fallbackExpert (experts: ${expertList(level)})`,
        );
      }
      return level.fallbackExpert;
    }
    if (typeof n !== 'string') throw new RoutingError(`routing['${level.name}'][${i}] must be a string or null (got ${typeof n})`);
    return check(n, `[${i}]`);
  });
}

/** Throws on routing keys that name no configured level (disabled levels are fine: ignored). */
export function checkRoutingKeys(cfg: HierarchyConfig, routing: HierarchyRouting): void {
  const names = new Set(cfg.levels.map((l) => l.name));
  for (const k of Object.keys(routing)) {
    if (!names.has(k))
      throw new RoutingError(`routing names unknown level '${k}'; the levels are ${cfg.levels.map((l) => `'${l.name}'`).join(', ')}`);
  }
}

/** One expert's sub-batch: which rows of the batch it takes, ascending. */
export interface RouteGroup {
  expert: string;
  indices: Int32Array;
}

/**
 * Samples grouped by expert: groups in the order of `expertOrder` (the level's declaration
 * order), experts with no samples left out, rows ascending inside each group.
 */
export function groupByExpert(names: readonly string[], expertOrder: readonly string[]): RouteGroup[] {
  const rows = new Map<string, number[]>(expertOrder.map((e) => [e, []]));
  names.forEach((n, i) => {
    const list = rows.get(n);
    if (!list) throw new RoutingError(`groupByExpert: '${n}' is not one of ${expertOrder.map((e) => `'${e}'`).join(', ')}`);
    list.push(i);
  });
  const out: RouteGroup[] = [];
  for (const e of expertOrder) {
    const list = rows.get(e)!;
    if (list.length > 0) out.push({ expert: e, indices: Int32Array.from(list) });
  }
  return out;
}
