// Config validation (errors name field, value, allowed range), JSON round trip, HF helpers, presets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, moeConfig, parseMoEConfig, routerConfig, type MoEConfigInput } from '../src/moe/config.js';
import { getMoeIntermediateSize, getNumExperts, getNumExpertsPerTok, isMoeLayer } from '../src/moe/hf-config.js';
import { PRESETS, moeConfigFromHf, presetFromHf } from '../src/moe/presets.js';

const ok: MoEConfigInput = { hiddenSize: 16, router: { numExperts: 8, topK: 2 }, experts: { intermediateSize: 32 } };

function fails(fn: () => unknown, field: string, value: string, allowed: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal(e.field, field);
    assert.ok(e.message.includes(`${field} = ${value}`), e.message);
    assert.match(e.allowed, allowed);
    return true;
  });
}

test('bad router configs fail at construction naming field, value and allowed range', () => {
  fails(() => routerConfig({ numExperts: 8, topK: 9 }), 'router.topK', '9', /integer in \[1, 8\]/);
  fails(() => routerConfig({ numExperts: 0, topK: 1 }), 'router.numExperts', '0', />= 1/);
  fails(() => routerConfig({ numExperts: 8, topK: 2, scoreFunc: 'relu' as never }), 'router.scoreFunc', "'relu'", /'softmax', 'sigmoid'/);
  fails(
    () => routerConfig({ numExperts: 8, topK: 2, groupLimit: { numGroups: 3, topkGroups: 1, groupScore: 'max', maskValue: 'zero' } }),
    'router.groupLimit.numGroups',
    '3',
    /divisor of numExperts = 8/,
  );
  fails(
    () => routerConfig({ numExperts: 8, topK: 2, groupLimit: { numGroups: 4, topkGroups: 5, groupScore: 'max', maskValue: 'zero' } }),
    'router.groupLimit.topkGroups',
    '5',
    /\[1, 4\]/,
  );
  fails(
    () => routerConfig({ numExperts: 8, topK: 4, groupLimit: { numGroups: 4, topkGroups: 1, groupScore: 'max', maskValue: 'zero' } }),
    'router.groupLimit.topkGroups',
    '1',
    /at least/,
  );
  fails(() => routerConfig({ numExperts: 8, topK: 2, jitterEps: 1 }), 'router.jitterEps', '1', /\[0, 1\)/);
  fails(() => routerConfig({ numExperts: 8, topK: 2, renormP: 0 }), 'router.renormP', '0', /\(0, inf\)/);
  fails(
    () => routerConfig({ numExperts: 8, topK: 2, selectOn: 'logits', selectionBias: { gamma: 0.1, rule: 'sign' } }),
    'router.selectOn',
    "'logits'",
    /'scores'/,
  );
  fails(() => routerConfig({ numExperts: 8, topK: 2, topk: 3 } as never), 'router.topk', '3', /no such field/);
});

test('bad MoE configs: capacity factor, expert layout, losses', () => {
  fails(() => moeConfig({ ...ok, dispatch: { capacityFactor: -1 } }), 'moe.dispatch.capacityFactor', '-1', /\(0, inf\)/);
  fails(
    () => moeConfig({ ...ok, experts: { intermediateSize: 32, kind: 'gelu', layout: 'fused' } }),
    'moe.experts.layout',
    "'fused'",
    /'separate'/,
  );
  fails(() => moeConfig({ ...ok, experts: { intermediateSize: 32, bias: true } }), 'moe.experts.bias', 'true', /fused/);
  fails(() => moeConfig({ ...ok, losses: { lbGranularity: 'micro' as never } }), 'moe.losses.lbGranularity', "'micro'", /'global-batch'/);
  fails(() => moeConfig({ ...ok, hiddenSize: 0 }), 'moe.hiddenSize', '0', />= 1/);
});

test('JSON round trip: parse(JSON(cfg)) deep-equals cfg', () => {
  const cfgs = [
    moeConfig(ok),
    moeConfig({
      ...ok,
      router: {
        numExperts: 8,
        topK: 3,
        scoreFunc: 'sigmoid',
        selectionBias: { gamma: 0.001, rule: 'sign-centered' },
        groupLimit: { numGroups: 4, topkGroups: 2, groupScore: 'top2-sum', maskValue: 'neg-inf' },
      },
      shared: { intermediateSize: 8, gate: 'sigmoid', mix: 'olmo' },
      dispatch: { capacityFactor: 1.25 },
      losses: { lbWeight: 0.01, zLossWeight: 0.001, lbGranularity: 'global-batch', scaleByNumLayers: true },
    }),
  ];
  for (const c of cfgs) assert.deepEqual(parseMoEConfig(JSON.parse(JSON.stringify(c))), c);
});

test('HF config helpers (first non-null key wins) and which layers are MoE', () => {
  assert.equal(getNumExperts({ n_routed_experts: 64, num_experts: null }), 64);
  assert.equal(getNumExperts({}), 0);
  assert.equal(getNumExpertsPerTok({ moe_top_k: 4 }), 4);
  assert.equal(getNumExpertsPerTok({}), 2);
  assert.equal(getMoeIntermediateSize({ moe_intermediate_size: 1408, intermediate_size: 10944 }), 1408);
  assert.throws(() => getMoeIntermediateSize({}), /moe_intermediate_size/);
  const qwen = { num_experts: 60, decoder_sparse_step: 2, mlp_only_layers: [3] };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].filter((i) => isMoeLayer(qwen, i)),
    [1, 5],
  );
  const ds = { n_routed_experts: 256, first_k_dense_replace: 3 };
  assert.deepEqual(
    [0, 1, 2, 3, 4].filter((i) => isMoeLayer(ds, i)),
    [3, 4],
  );
  assert.equal(isMoeLayer({ num_experts: 0 }, 0), false);
});

test('presets from HF configs', () => {
  const base = { hidden_size: 32, intermediate_size: 64 };
  const ds = moeConfigFromHf({
    ...base,
    model_type: 'deepseek_v3',
    n_routed_experts: 16,
    num_experts_per_tok: 4,
    moe_intermediate_size: 8,
    n_group: 4,
    topk_group: 2,
    routed_scaling_factor: 2.5,
    norm_topk_prob: true,
    n_shared_experts: 1,
  });
  assert.equal(ds.router.scoreFunc, 'sigmoid');
  assert.deepEqual(ds.router.groupLimit, { numGroups: 4, topkGroups: 2, groupScore: 'top2-sum', maskValue: 'neg-inf' });
  assert.equal(ds.router.renormalize, 'sum');
  assert.equal(ds.router.scalingFactor, 2.5);
  assert.deepEqual(ds.shared, { intermediateSize: 8, gate: 'none', mix: 'add' });
  const oss = moeConfigFromHf({ ...base, model_type: 'gpt_oss', num_local_experts: 8, experts_per_token: 2 });
  assert.equal(oss.router.selectOn, 'logits');
  assert.equal(oss.router.routerBias, true);
  assert.deepEqual(
    [oss.experts.kind, oss.experts.layout, oss.experts.orientation, oss.experts.bias, oss.experts.swigluLimit],
    ['gpt-oss', 'interleaved', 'in-out', true, 7],
  );
  const q2 = moeConfigFromHf({ ...base, model_type: 'qwen2_moe', num_experts: 8, shared_expert_intermediate_size: 40 });
  assert.deepEqual(q2.shared, { intermediateSize: 40, gate: 'sigmoid', mix: 'add' });
  assert.equal(q2.router.renormalize, 'none');
  const l4 = moeConfigFromHf({ ...base, model_type: 'llama4_text', num_local_experts: 16, num_experts_per_tok: 1 });
  assert.equal(l4.dispatch.weightsOn, 'input');
  assert.equal(l4.router.scoreFunc, 'sigmoid');
  for (const p of PRESETS) presetFromHf(p, { ...base, num_experts: 8, shared_expert_intermediate_size: 16, n_group: 2, topk_group: 1 });
  assert.throws(() => moeConfigFromHf({ ...base, model_type: 'llama' }), /model_type = 'llama'/);
});
