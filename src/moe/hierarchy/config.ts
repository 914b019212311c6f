// Typed, validated configs of a hierarchical expert model (celmoe-vp's ExpertConfig,
// HierarchyLevelConfig, CELMoEConfig). Plain JSON data: `parseHierarchyConfig(partial)` fills
// defaults and validates, and it accepts the JSON of a config it produced, so
// `parseHierarchyConfig(JSON.parse(JSON.stringify(cfg)))` deep-equals `cfg`.
import { ConfigError, bool, int, isRecord, num, or, record } from '../validate.js';

/** A JSON value (what expert metadata may hold, so configs survive JSON.stringify). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** One expert of a level. */
export interface HierarchyExpertConfig {
  /** Unique within its level; routing lists name it. */
  name: string;
  /** Multiplies every loss the expert reports in ExpertResult.losses (default 1). */
  lossWeight: number;
  /** Detach the hidden state this expert receives from the level above (default false). */
  stopGradientFromParent: boolean;
  /** Free-form JSON handed to the expert factory (default {}). */
  metadata: { [key: string]: JsonValue };
}

/** One level of the hierarchy (universal, family, language, domain, region, ...). */
export interface HierarchyLevelConfig {
  /** Unique among the levels; routing and level/bridge losses name it. */
  name: string;
  /** The level's experts, in declaration order (the order sub-batches run in). */
  experts: HierarchyExpertConfig[];
  /** Expert used when the routing omits the level or names null for a sample (default null). */
  fallbackExpert: string | null;
  /** Disabled levels are built but skipped by the forward (default true). */
  enabled: boolean;
}

/** The whole hierarchy (celmoe-vp's CELMoEConfig). */
export interface HierarchyConfig {
  /** Size of the last axis of every hidden state. */
  hiddenSize: number;
  /** Levels, top (parent) first; each enabled level takes the previous enabled level's output. */
  levels: HierarchyLevelConfig[];
  /** LearnedFusion (softmax over learned per-level logits) if true, else MeanFusion (default true). */
  useLearnedFusion: boolean;
  /** Inverted dropout on the fused hidden while training, in [0, 1) (default 0). */
  fusionDropout: number;
}

/** Input accepted for an expert: a full config or a partial with at least the name. */
export type HierarchyExpertConfigInput = Partial<HierarchyExpertConfig> & { name: string };

/** Input accepted for a level: experts as an array or as a name -> config record. */
export interface HierarchyLevelConfigInput {
  name: string;
  experts: HierarchyExpertConfigInput[] | Record<string, Partial<HierarchyExpertConfig>>;
  fallbackExpert?: string | null;
  enabled?: boolean;
}

export interface HierarchyConfigInput {
  hiddenSize: number;
  levels: HierarchyLevelConfigInput[];
  useLearnedFusion?: boolean;
  fusionDropout?: number;
}

const NAME_RE = /^[^/\s][^/]*$/;

function name(field: string, v: unknown): string {
  if (typeof v !== 'string' || !NAME_RE.test(v) || v.trim() !== v) {
    throw new ConfigError(field, v, "a non-empty string without '/' and without leading or trailing spaces");
  }
  return v;
}

function json(field: string, v: unknown): JsonValue {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ConfigError(field, v, 'a finite number (metadata must survive JSON)');
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => json(`${field}[${i}]`, x));
  if (isRecord(v) && Object.getPrototypeOf(v) === Object.prototype) {
    const out: { [key: string]: JsonValue } = {};
    for (const [k, x] of Object.entries(v)) out[k] = json(`${field}.${k}`, x);
    return out;
  }
  throw new ConfigError(field, v, 'a JSON value (string, finite number, boolean, null, array or plain object)');
}

const EXPERT_KEYS = ['name', 'lossWeight', 'stopGradientFromParent', 'metadata'] as const;

export function parseHierarchyExpertConfig(input: unknown, field = 'expert'): HierarchyExpertConfig {
  const r = record(field, input, EXPERT_KEYS);
  const metadata = json(`${field}.metadata`, or(r['metadata'], {}));
  if (!isRecord(metadata)) throw new ConfigError(`${field}.metadata`, metadata, 'a plain object');
  return {
    name: name(`${field}.name`, r['name']),
    lossWeight: num(`${field}.lossWeight`, or(r['lossWeight'], 1), { min: 0 }),
    stopGradientFromParent: bool(`${field}.stopGradientFromParent`, or(r['stopGradientFromParent'], false)),
    metadata: metadata as { [key: string]: JsonValue },
  };
}

const LEVEL_KEYS = ['name', 'experts', 'fallbackExpert', 'enabled'] as const;

export function parseHierarchyLevelConfig(input: unknown, field = 'level'): HierarchyLevelConfig {
  const r = record(field, input, LEVEL_KEYS);
  const levelName = name(`${field}.name`, r['name']);
  const rawExperts = r['experts'];
  let experts: HierarchyExpertConfig[];
  if (Array.isArray(rawExperts)) {
    experts = rawExperts.map((e, i) => parseHierarchyExpertConfig(e, `${field}.experts[${i}]`));
  } else if (isRecord(rawExperts)) {
    // Mapping form (celmoe-vp): the key is the name; an explicit name must agree with it.
    experts = Object.entries(rawExperts).map(([key, e]) => {
      const f = `${field}.experts.${key}`;
      if (!isRecord(e)) throw new ConfigError(f, e, 'an object');
      if (e['name'] !== undefined && e['name'] !== key)
        throw new ConfigError(`${f}.name`, e['name'], `'${key}' (the key it is stored under)`);
      return parseHierarchyExpertConfig({ ...e, name: key }, f);
    });
  } else {
    throw new ConfigError(`${field}.experts`, rawExperts, 'an array of expert configs or a name -> expert config object');
  }
  if (experts.length === 0) throw new ConfigError(`${field}.experts`, rawExperts, 'at least one expert');
  const seen = new Set<string>();
  experts.forEach((e, i) => {
    if (seen.has(e.name)) throw new ConfigError(`${field}.experts[${i}].name`, e.name, 'a name unique within the level');
    seen.add(e.name);
  });
  const fb = or(r['fallbackExpert'], null);
  if (fb !== null && (typeof fb !== 'string' || !seen.has(fb))) {
    throw new ConfigError(
      `${field}.fallbackExpert`,
      fb,
      `null or one of the level's experts (${[...seen].map((s) => `'${s}'`).join(', ')})`,
    );
  }
  return {
    name: levelName,
    experts,
    fallbackExpert: fb as string | null,
    enabled: bool(`${field}.enabled`, or(r['enabled'], true)),
  };
}

const CONFIG_KEYS = ['hiddenSize', 'levels', 'useLearnedFusion', 'fusionDropout'] as const;

export function parseHierarchyConfig(input: unknown, field = 'hierarchy'): HierarchyConfig {
  const r = record(field, input, CONFIG_KEYS);
  const rawLevels = r['levels'];
  if (!Array.isArray(rawLevels) || rawLevels.length === 0)
    throw new ConfigError(`${field}.levels`, rawLevels, 'a non-empty array of level configs');
  const levels = rawLevels.map((l, i) => parseHierarchyLevelConfig(l, `${field}.levels[${i}]`));
  const seen = new Set<string>();
  levels.forEach((l, i) => {
    if (seen.has(l.name)) throw new ConfigError(`${field}.levels[${i}].name`, l.name, 'a level name unique in the hierarchy');
    seen.add(l.name);
  });
  if (!levels.some((l) => l.enabled))
    throw new ConfigError(
      `${field}.levels`,
      levels.map((l) => l.name),
      'at least one enabled level',
    );
  return {
    hiddenSize: int(`${field}.hiddenSize`, r['hiddenSize'], 1),
    levels,
    useLearnedFusion: bool(`${field}.useLearnedFusion`, or(r['useLearnedFusion'], true)),
    fusionDropout: num(`${field}.fusionDropout`, or(r['fusionDropout'], 0), { min: 0, max: 1, maxOpen: true }),
  };
}

/** Typed builder: fills defaults and validates (same as parseHierarchyConfig). */
export function hierarchyConfig(input: HierarchyConfigInput): HierarchyConfig {
  return parseHierarchyConfig(input);
}

/** JSON text of a config (parseHierarchyConfig(JSON.parse(text)) gives it back). */
export function hierarchyConfigToJSON(cfg: HierarchyConfig, space?: number): string {
  return JSON.stringify(parseHierarchyConfig(cfg), null, space);
}
