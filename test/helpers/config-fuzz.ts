// Random configs for the property tests and scripts/fuzz-readers.ts. CT-MoE experiment
// configs are judged against an oracle written from the documented ranges (so a value the
// validator lets through wrongly is a "silent acceptance"); MoE layer configs only against
// "ConfigError or a config" (no oracle: any other exception is the failure looked for).
import fc from 'fast-check';
import { type CtMoeExperimentConfig, TINY_PRESET, experimentConfig } from '../../src/experiments/ctmoe/config.js';
import { moeConfig, type MoEConfigInput } from '../../src/moe/config.js';
import { ConfigError } from '../../src/moe/validate.js';

type Field = keyof CtMoeExperimentConfig;
const isInt = (v: unknown, lo: number, hi: number) => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
const isNum = (v: unknown, ok: (x: number) => boolean) => typeof v === 'number' && Number.isFinite(v) && ok(v);
const COUNT = 1e9;
const SIZE = 2 ** 24;

/** The documented ranges of every field (config.ts's comments and validateExperimentConfig's contract). */
export function oracleValid(c: Record<string, unknown>): boolean {
  const N = c['numExperts'];
  const betas = c['betas'];
  return (
    isInt(c['vocabSize'], 256, 50257) &&
    isInt(c['seqLen'], 1, SIZE) &&
    isInt(c['dModel'], 1, SIZE) &&
    isInt(c['nHead'], 1, SIZE) &&
    (c['dModel'] as number) % (c['nHead'] as number) === 0 &&
    isInt(c['nLayer'], 1, SIZE) &&
    isInt(N, 2, 65536) &&
    isInt(c['topK'], 1, N as number) &&
    isNum(c['dropout'], (x) => x >= 0 && x < 1) &&
    isNum(c['routingScale'], () => true) &&
    isNum(c['collabScale'], () => true) &&
    isNum(c['sTemp'], (x) => x > 0) &&
    isNum(c['sLrScale'], (x) => x >= 0) &&
    isNum(c['lbWeight'], (x) => x >= 0) &&
    isInt(c['batchSize'], 1, SIZE) &&
    isNum(c['lr'], (x) => x >= 0) &&
    isNum(c['weightDecay'], (x) => x >= 0) &&
    Array.isArray(betas) &&
    betas.length === 2 &&
    betas.every((b) => isNum(b, (x) => x >= 0 && x < 1)) &&
    isNum(c['gradClip'], (x) => x > 0) &&
    (c['steps'] === null || isInt(c['steps'], 1, COUNT)) &&
    isInt(c['epochs'], 1, COUNT) &&
    isInt(c['warmup'], 0, COUNT) &&
    isNum(c['lrFloor'], (x) => x >= 0 && x <= 1) &&
    isInt(c['seed'], 0, Number.MAX_SAFE_INTEGER) &&
    isInt(c['logEvery'], 1, COUNT) &&
    isInt(c['evalBatches'], 1, COUNT) &&
    isInt(c['freqBatches'], 1, COUNT) &&
    isInt(c['checkpointEvery'], 1, COUNT) &&
    (c['expertCompute'] === undefined || c['expertCompute'] === 'sparse' || c['expertCompute'] === 'dense')
  );
}

const FIELDS = Object.keys(TINY_PRESET) as Field[];
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -3, max: 70_000 }),
  fc.constantFrom(
    0,
    1,
    2,
    255,
    256,
    50257,
    50258,
    2 ** 24,
    2 ** 24 + 1,
    1e9,
    1e9 + 1,
    0.5,
    0.999,
    1,
    -0,
    NaN,
    Infinity,
    -Infinity,
    1e300,
    2 ** 53,
  ),
  fc.double(),
  fc.constantFrom('sparse', 'dense', 'bogus', '', null, true, undefined, [0.9, 0.99], [0.9], [1, 0.5], {}, []),
  fc.array(fc.double({ min: -1, max: 2 }), { maxLength: 3 }),
);

export const arbConfigCase = fc.dictionary(fc.constantFrom(...FIELDS, 'bogusField'), anyValue, { maxKeys: 4 });

/** 'ok' when experimentConfig agrees with the oracle; else what went wrong. */
export function judgeConfig(overrides: Record<string, unknown>): string {
  const merged: Record<string, unknown> = { ...TINY_PRESET, ...overrides };
  const valid = !('bogusField' in overrides) && oracleValid(merged);
  try {
    experimentConfig('tiny', overrides as Partial<CtMoeExperimentConfig>);
    return valid ? 'ok' : `silent acceptance of ${JSON.stringify(overrides)}`;
  } catch (e) {
    if (!(e instanceof ConfigError)) return `untyped ${String(e)} for ${JSON.stringify(overrides)}`;
    return valid ? `false rejection of ${JSON.stringify(overrides)}: ${e.message}` : 'ok';
  }
}

const VALID_MOE: MoEConfigInput = {
  hiddenSize: 8,
  router: { numExperts: 4, topK: 2 },
  experts: { intermediateSize: 6 },
  shared: { intermediateSize: 4 },
  dispatch: {},
  losses: { lbWeight: 0.01 },
  topology: null,
};
const PATHS = [
  'hiddenSize',
  'router',
  'router.numExperts',
  'router.topK',
  'router.kind',
  'router.capacityFactor',
  'router.scoreFunc',
  'router.renormalize',
  'router.scalingFactor',
  'router.jitterEps',
  'router.groupLimit',
  'router.selectionBias',
  'experts',
  'experts.intermediateSize',
  'experts.activation',
  'shared',
  'shared.intermediateSize',
  'shared.mix',
  'dispatch',
  'dispatch.capacityFactor',
  'losses',
  'losses.lbWeight',
  'losses.lbConvention',
  'losses.zLossWeight',
  'topology',
  'topology.sTemp',
  'bogus',
];

function setPath(obj: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const [head, ...rest] = path.split('.');
  const copy = { ...obj };
  copy[head!] =
    rest.length === 0
      ? value
      : setPath(
          (typeof copy[head!] === 'object' && copy[head!] !== null ? copy[head!] : {}) as Record<string, unknown>,
          rest.join('.'),
          value,
        );
  return copy;
}

export const arbMoeInput: fc.Arbitrary<unknown> = fc.oneof(
  fc.anything(),
  fc
    .array(fc.tuple(fc.constantFrom(...PATHS), fc.oneof(anyValue, fc.anything({ maxDepth: 2 }))), { minLength: 1, maxLength: 3 })
    .map((edits) => edits.reduce((acc, [p, v]) => setPath(acc, p, v), VALID_MOE as unknown as Record<string, unknown>)),
);

/** 'ok' when moeConfig gives a config or a ConfigError. */
export function judgeMoe(input: unknown): string {
  try {
    moeConfig(input as MoEConfigInput);
    return 'ok';
  } catch (e) {
    return e instanceof ConfigError ? 'ok' : `untyped ${String(e)}`;
  }
}
