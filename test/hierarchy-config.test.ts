// Hierarchy configs: defaults, JSON round trip, the mapping form, and validation errors that
// name the field.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hierarchyConfig, hierarchyConfigToJSON, parseHierarchyConfig, parseHierarchyExpertConfig } from '../src/moe/hierarchy/index.js';

const input = {
  hiddenSize: 8,
  levels: [
    { name: 'universal', experts: [{ name: 'core' }], fallbackExpert: 'core' },
    {
      name: 'domain',
      experts: {
        code: { lossWeight: 0.5, metadata: { ext: ['.ts', '.go'], nested: { depth: 2, ok: true, none: null } } },
        prose: { stopGradientFromParent: true },
      },
    },
    { name: 'language', experts: [{ name: 'ts' }, { name: 'go' }], enabled: false },
  ],
};

test('defaults: lossWeight 1, stopGradientFromParent false, metadata {}, fallback null, enabled true, learned fusion on, dropout 0', () => {
  const cfg = hierarchyConfig(input);
  assert.deepEqual(parseHierarchyExpertConfig({ name: 'x' }), { name: 'x', lossWeight: 1, stopGradientFromParent: false, metadata: {} });
  assert.equal(cfg.useLearnedFusion, true);
  assert.equal(cfg.fusionDropout, 0);
  assert.equal(cfg.levels[1]!.fallbackExpert, null);
  assert.equal(cfg.levels[1]!.enabled, true);
  assert.equal(cfg.levels[2]!.enabled, false);
  // mapping form -> array in key order, the key becomes the name
  assert.deepEqual(
    cfg.levels[1]!.experts.map((e) => e.name),
    ['code', 'prose'],
  );
  assert.equal(cfg.levels[1]!.experts[0]!.lossWeight, 0.5);
  assert.equal(cfg.levels[1]!.experts[1]!.stopGradientFromParent, true);
});

test('JSON round trip: parse(JSON(cfg)) deep-equals cfg, and parsing is idempotent', () => {
  const cfg = hierarchyConfig({ ...input, useLearnedFusion: false, fusionDropout: 0.25 });
  const again = parseHierarchyConfig(JSON.parse(JSON.stringify(cfg)));
  assert.deepEqual(again, cfg);
  assert.deepEqual(parseHierarchyConfig(JSON.parse(hierarchyConfigToJSON(cfg, 2))), cfg);
  assert.deepEqual(parseHierarchyConfig(again), cfg);
});

test('validation errors name the field, the value and what is allowed', () => {
  // biome-ignore lint/suspicious/noExplicitAny: patches poke at arbitrary fields of a JSON copy
  const bad = (patch: (c: any) => void, re: RegExp): void => {
    const c = JSON.parse(JSON.stringify(input));
    patch(c);
    assert.throws(() => parseHierarchyConfig(c), re);
  };
  bad((c) => (c.hiddenSize = 0), /hierarchy\.hiddenSize = 0 is invalid: expected an integer >= 1/);
  bad((c) => (c.levels = []), /hierarchy\.levels .*non-empty array/);
  bad((c) => (c.levels[1].name = 'universal'), /hierarchy\.levels\[1\]\.name = 'universal'.*unique/);
  bad((c) => (c.levels[0].experts = [{ name: 'a' }, { name: 'a' }]), /levels\[0\]\.experts\[1\]\.name = 'a'.*unique within the level/);
  bad((c) => (c.levels[0].experts = []), /levels\[0\]\.experts .*at least one expert/);
  bad((c) => (c.levels[0].fallbackExpert = 'nope'), /levels\[0\]\.fallbackExpert = 'nope'.*'core'/);
  bad((c) => (c.levels[1].experts.code.lossWeight = -1), /levels\[1\]\.experts\.code\.lossWeight = -1/);
  bad((c) => (c.levels[1].experts.code.name = 'other'), /experts\.code\.name = 'other'.*'code'/);
  bad((c) => (c.levels[2].experts[0].stopGradFromParent = true), /stopGradFromParent.*no such field/);
  bad((c) => (c.fusionDropout = 1), /fusionDropout = 1.*\[0, 1\)/);
  bad((c) => (c.levels[0].name = 'a/b'), /levels\[0\]\.name = 'a\/b'/);
  bad((c) => c.levels.forEach((l: { enabled: boolean }) => (l.enabled = false)), /at least one enabled level/);
  assert.throws(() => parseHierarchyExpertConfig({ name: 'x', metadata: { f: () => 1 } }), /expert\.metadata\.f .*JSON value/);
  assert.throws(() => parseHierarchyExpertConfig({ name: 'x', metadata: { n: Number.NaN } }), /expert\.metadata\.n .*finite/);
});
