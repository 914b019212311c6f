// Every tensor a model's checkpoint should hold, by name and shape, derived from its config
// (HF naming per family; the MoE blocks' names come from moe/hf/checkpoint.ts), and where each
// routed expert's weights live inside those tensors (for per-expert norms).
import { type HfExpertFormat, hfBlockConfig, hfBlockKeys, hfExpertFormats } from '../moe/hf/checkpoint.js';
import type { PresetName } from '../moe/presets.js';
import type { AttentionSpec, ModelSpec, MoEFfnSpec } from './model-spec.js';

export interface ExpectedTensor {
  shape: number[];
  /** The one dtype allowed (MXFP4 blocks / scales 'U8', FP8 weights, their F32 scales), or null: a float dtype, the config's torch_dtype when it names one. */
  dtype: string | null;
}

/** Leading-axis rows [first, first + count) of `name` (count null: the whole tensor); MXFP4 pairs blocks with scales. */
export interface ExpertSlice {
  name: string;
  first: number;
  count: number | null;
  mxfp4Scales?: string;
  /** Block-FP8 weights: the [ceil(out/b0), ceil(in/b1)] inverse-scale tensor and the block. */
  fp8Scales?: { name: string; block: [number, number] };
}

export interface CheckpointLayout {
  expected: Map<string, ExpectedTensor>;
  /** Per MoE layer, per expert, the slices holding its gate, up and down weights. */
  experts: { layer: number; slices: ExpertSlice[][] }[];
  /** Name prefixes outside the decoder (a vision tower): present tensors there are neither checked nor unexpected. */
  outside: string[];
}

/** The preset (and so the block-key naming) of each model_type's MoE layers. */
const BLOCK_PRESET: Record<string, PresetName> = {
  mixtral: 'mixtral',
  phimoe: 'phimoe',
  qwen2_moe: 'qwen2_moe',
  qwen3_moe: 'qwen3_moe',
  olmoe: 'olmoe',
  deepseek_v2: 'deepseek_v2',
  deepseek_v3: 'deepseek_v3',
  gpt_oss: 'gpt_oss',
  granitemoe: 'granitemoe',
  llama4: 'llama4',
  llama4_text: 'llama4',
  dbrx: 'dbrx',
};

function attentionTensors(a: AttentionSpec, H: number, p: string, put: (n: string, s: number[]) => void): void {
  if (a.mla) {
    const m = a.mla;
    const qh = m.qkNopeHeadDim + m.qkRopeHeadDim;
    if (m.qLoraRank === null) put(`${p}q_proj.weight`, [a.numHeads * qh, H]);
    else {
      put(`${p}q_a_proj.weight`, [m.qLoraRank, H]);
      put(`${p}q_a_layernorm.weight`, [m.qLoraRank]);
      put(`${p}q_b_proj.weight`, [a.numHeads * qh, m.qLoraRank]);
    }
    put(`${p}kv_a_proj_with_mqa.weight`, [m.kvLoraRank + m.qkRopeHeadDim, H]);
    put(`${p}kv_a_layernorm.weight`, [m.kvLoraRank]);
    put(`${p}kv_b_proj.weight`, [a.numHeads * (m.qkNopeHeadDim + m.vHeadDim), m.kvLoraRank]);
    put(`${p}o_proj.weight`, [H, a.numHeads * m.vHeadDim]);
    return;
  }
  const q = a.numHeads * a.headDim;
  const kv = a.numKvHeads * a.headDim;
  for (const [n, o] of [
    ['q', q],
    ['k', kv],
    ['v', kv],
  ] as const) {
    put(`${p}${n}_proj.weight`, [o, H]);
    if (a.qkvBias) put(`${p}${n}_proj.bias`, [o]);
  }
  put(`${p}o_proj.weight`, [H, q]);
  if (a.oBias) put(`${p}o_proj.bias`, [H]);
  if (a.qkNorm !== 'none') {
    put(`${p}q_norm.weight`, [a.qkNorm === 'per-head' ? a.headDim : q]);
    put(`${p}k_norm.weight`, [a.qkNorm === 'per-head' ? a.headDim : kv]);
  }
  if (a.sinks) put(`${p}sinks`, [a.numHeads]);
}

/**
 * The layout of `spec`'s checkpoint. `present` (the checkpoint's names) picks per-expert vs
 * fused experts and MXFP4 vs plain GPT-OSS experts, as the loader does; `format` forces one.
 */
export function checkpointLayout(spec: ModelSpec, present: ReadonlySet<string>, format?: HfExpertFormat): CheckpointLayout {
  if (spec.modelType === 'dbrx') return dbrxLayout(spec);
  const expected = new Map<string, ExpectedTensor>();
  const put = (n: string, shape: number[], dtype: string | null = null) => expected.set(n, { shape, dtype });
  const H = spec.hiddenSize;
  const V = spec.vocabSize;
  const multimodal = spec.modelType === 'llama4';
  const root = multimodal ? 'language_model.' : '';
  const norm = (n: string, w = H) => {
    put(`${n}.weight`, [w]);
    if (spec.norm === 'layernorm') put(`${n}.bias`, [w]);
  };
  put(`${root}model.embed_tokens.weight`, [V, H]);
  norm(`${root}model.norm`);
  if (!spec.tieEmbeddings) put(`${root}lm_head.weight`, [V, H]);
  if (spec.lmHeadBias) put(`${root}lm_head.bias`, [V]);
  const preset = BLOCK_PRESET[spec.modelType]!;
  const blockCfg = spec.layers.some((l) => l.kind === 'moe') ? hfBlockConfig(preset, spec.text) : null;
  const ffnModule = preset === 'llama4' ? 'feed_forward' : 'mlp';
  const experts: CheckpointLayout['experts'] = [];
  spec.layers.forEach((f, i) => {
    const p = `${root}model.layers.${i}.`;
    norm(`${p}input_layernorm`);
    norm(`${p}post_attention_layernorm`);
    attentionTensors(spec.attention, H, `${p}self_attn.`, put);
    if (f.kind === 'dense') {
      put(`${p}${ffnModule}.gate_proj.weight`, [f.intermediateSize, H]);
      put(`${p}${ffnModule}.up_proj.weight`, [f.intermediateSize, H]);
      put(`${p}${ffnModule}.down_proj.weight`, [H, f.intermediateSize]);
      return;
    }
    experts.push({ layer: i, slices: moeBlockTensors(preset, i, p, f, blockCfg!, present, H, put, format) });
  });
  applyBlockFp8(spec, expected, experts);
  // DeepSeek-V3's MTP module(s) sit after the decoder layers, as layers L, L+1, ...
  const mtp = spec.text['num_nextn_predict_layers'];
  const mtpLayers = typeof mtp === 'number' ? Array.from({ length: mtp }, (_, i) => `${root}model.layers.${spec.numLayers + i}.`) : [];
  return { expected, experts, outside: [...(multimodal ? ['vision_model.', 'multi_modal_projector.'] : []), ...mtpLayers] };
}

function moeBlockTensors(
  preset: PresetName,
  layer: number,
  prefix: string,
  f: MoEFfnSpec,
  cfg: ReturnType<typeof hfBlockConfig>,
  present: ReadonlySet<string>,
  H: number,
  put: (n: string, s: number[], dtype?: string | null) => void,
  format?: HfExpertFormat,
): ExpertSlice[][] {
  const perExpert = hfExpertFormats(preset).includes('per-expert') ? hfBlockKeys(preset, layer, cfg, 'per-expert', prefix) : null;
  const usePerExpert =
    perExpert?.experts.kind === 'per-expert' && (format ? format === 'per-expert' : present.has(perExpert.experts.gate(0)));
  const keys = usePerExpert ? perExpert! : hfBlockKeys(preset, layer, cfg, 'fused', prefix);
  const E = f.numExperts;
  const I = f.expertIntermediateSize;
  put(keys.router, [E, H]);
  if (keys.routerBias) put(keys.routerBias, [E]);
  if (keys.scoreBias) put(keys.scoreBias, [E]);
  if (keys.shared) {
    const Is = f.sharedIntermediateSize;
    put(keys.shared.gate, [Is, H]);
    put(keys.shared.up, [Is, H]);
    put(keys.shared.down, [H, Is]);
  }
  if (keys.sharedGate) put(keys.sharedGate, [1, H]);
  const slices: ExpertSlice[][] = [];
  const ex = keys.experts;
  if (ex.kind === 'stacked-separate') {
    for (const n of [ex.gate, ex.up, ex.down]) put(n, [E * I, H]);
    for (let e = 0; e < E; e++) slices.push([ex.gate, ex.up, ex.down].map((name) => ({ name, first: e * I, count: I })));
    return slices;
  }
  if (ex.kind === 'per-expert') {
    for (let e = 0; e < E; e++) {
      put(ex.gate(e), [I, H]);
      put(ex.up(e), [I, H]);
      put(ex.down(e), [H, I]);
      slices.push([ex.gate(e), ex.up(e), ex.down(e)].map((name) => ({ name, first: 0, count: null })));
    }
    return slices;
  }
  const stacked: [string, number, number][] = [
    [ex.gateUp, 2 * I, H],
    [ex.down, H, I],
  ];
  const names: { name: string; scales?: string }[] = [];
  for (const [name, out, inp] of stacked) {
    if (preset === 'gpt_oss' && !present.has(name) && present.has(`${name}_blocks`)) {
      // MXFP4: blocks [E, out, in/32, 16] and e8m0 scales [E, out, in/32], rows in out-in order
      put(`${name}_blocks`, [E, out, inp / 32, 16], 'U8');
      put(`${name}_scales`, [E, out, inp / 32], 'U8');
      names.push({ name: `${name}_blocks`, scales: `${name}_scales` });
    } else {
      put(name, ex.orientation === 'out-in' ? [E, out, inp] : [E, inp, out]);
      names.push({ name });
    }
  }
  if (ex.gateUpBias) put(ex.gateUpBias, [E, 2 * I]);
  if (ex.downBias) put(ex.downBias, [E, H]);
  for (let e = 0; e < E; e++)
    slices.push(names.map((n) => ({ name: n.name, first: e, count: 1, ...(n.scales ? { mxfp4Scales: n.scales } : {}) })));
  return slices;
}

/** DBRX (transformers DbrxForCausalLM): fused Wqkv, experts as [E·I, H] matrices w1 (gate), v1 (up), w2 (down, transposed). */
function dbrxLayout(spec: ModelSpec): CheckpointLayout {
  const expected = new Map<string, ExpectedTensor>();
  const put = (n: string, shape: number[]) => expected.set(n, { shape, dtype: null });
  const H = spec.hiddenSize;
  const a = spec.attention;
  put('transformer.wte.weight', [spec.vocabSize, H]);
  put('transformer.norm_f.weight', [H]);
  if (!spec.tieEmbeddings) put('lm_head.weight', [spec.vocabSize, H]);
  const experts: CheckpointLayout['experts'] = [];
  const blockCfg = hfBlockConfig('dbrx', spec.text);
  spec.layers.forEach((f, i) => {
    const p = `transformer.blocks.${i}.`;
    put(`${p}norm_attn_norm.norm_1.weight`, [H]);
    put(`${p}norm_attn_norm.norm_2.weight`, [H]);
    put(`${p}norm_attn_norm.attn.Wqkv.weight`, [(a.numHeads + 2 * a.numKvHeads) * a.headDim, H]);
    put(`${p}norm_attn_norm.attn.out_proj.weight`, [H, a.numHeads * a.headDim]);
    if (f.kind === 'moe') experts.push({ layer: i, slices: moeBlockTensors('dbrx', i, p, f, blockCfg, new Set(), H, put) });
  });
  return { expected, experts, outside: [] };
}

/**
 * Block-FP8 checkpoints (quantization_config {quant_method 'fp8', fmt 'e4m3' | 'e5m2',
 * weight_block_size [b0, b1]}, as DeepSeek-V3 and the Qwen3 FP8 releases ship): every linear
 * projection `*_proj.weight` (and MLA's `kv_a_proj_with_mqa.weight`) [out, in] is stored in FP8 with `<name>_scale_inv`
 * [ceil(out/b0), ceil(in/b1)] F32 beside it; embeddings, norms, routers and the head stay in
 * the model's dtype.
 */
function applyBlockFp8(spec: ModelSpec, expected: Map<string, ExpectedTensor>, experts: CheckpointLayout['experts']): void {
  const q = spec.text['quantization_config'];
  if (typeof q !== 'object' || q === null || (q as Record<string, unknown>)['quant_method'] !== 'fp8') return;
  const qc = q as Record<string, unknown>;
  const block = qc['weight_block_size'];
  if (!Array.isArray(block) || block.length !== 2) return;
  const [b0, b1] = block as [number, number];
  const dtype = qc['fmt'] === 'e5m2' ? 'F8_E5M2' : 'F8_E4M3';
  const scales = new Map<string, string>();
  for (const [name, e] of [...expected]) {
    if (!/_proj(_with_mqa)?\.weight$/.test(name) || e.shape.length !== 2) continue;
    const [out, inp] = e.shape as [number, number];
    const scale = `${name}_scale_inv`;
    expected.set(name, { shape: e.shape, dtype });
    expected.set(scale, { shape: [Math.ceil(out / b0), Math.ceil(inp / b1)], dtype: 'F32' });
    scales.set(name, scale);
  }
  for (const l of experts) {
    for (const slices of l.slices) {
      for (const s of slices) {
        const scale = scales.get(s.name);
        if (scale && s.count === null) s.fp8Scales = { name: scale, block: [b0, b1] };
      }
    }
  }
}
