// Hugging Face checkpoints <-> MoELayer: build an MoE block from an HF config.json and the
// tensors of that model's own safetensors naming and layout (spec/hf-moe.md), and the inverse.
//
// Names (relative to the prefix, default `model.layers.N.`):
//   mixtral     block_sparse_moe.gate.weight [E,H]; experts.M.w1|w3|w2.weight [I,H] [I,H] [H,I]
//   qwen2_moe   mlp.gate.weight; mlp.experts.M.{gate,up,down}_proj.weight; mlp.shared_expert.*;
//               mlp.shared_expert_gate.weight [1,H]
//   qwen3_moe, olmoe   mlp.gate.weight; mlp.experts.M.{gate,up,down}_proj.weight
//   deepseek_v2/v3     as Qwen3 plus mlp.shared_experts.* (when n_shared_experts > 0) and, V3,
//               mlp.gate.e_score_correction_bias [E] (the selection bias)
//   gpt_oss     mlp.router.weight [E,H], mlp.router.bias [E]; mlp.experts.gate_up_proj [E,H,2I]
//               (interleaved: even columns gate, odd up), gate_up_proj_bias [E,2I],
//               down_proj [E,I,H], down_proj_bias [E,H]; or MXFP4 `<name>_blocks` + `<name>_scales`
//   granitemoe  block_sparse_moe.router.layer.weight; input_linear.weight [E,2I,H] (gate half
//               first); output_linear.weight [E,H,I]
//   phimoe      as mixtral (block_sparse_moe.gate.weight; experts.M.w1|w3|w2.weight)
//   dbrx        prefix transformer.blocks.N.: ffn.router.layer.weight [E,H]; ffn.experts.mlp.w1 (gate),
//               v1 (up), w2 (down, stored transposed), each [E·I, H]
//   llama4      feed_forward.router.weight; feed_forward.experts.gate_up_proj [E,H,2I] (gate half
//               first), down_proj [E,I,H]; feed_forward.shared_expert.{gate,up,down}_proj.weight
//               (hf-moe.md gives no Llama-4 names: these are transformers' Llama4TextMoe module
//               names; the multimodal checkpoints put `language_model.` before `model.`: pass prefix)
// Format 'fused' for the per-expert models is transformers v5's in-memory form:
//   <module>.experts.gate_up_proj [E,2I,H] (gate rows first) and <module>.experts.down_proj [E,H,I],
// under the same module as the per-expert keys (e.g. block_sparse_moe for Mixtral). For GPT-OSS,
// Granite and Llama-4 the native checkpoint form is the fused one (no per-expert form exists).
import type { FloatDType } from '../../backend/types.js';
import { readSafetensorsSync, type SafetensorsTensor } from '../../io/safetensors.js';
import { fromArray } from '../../ops/creation.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Generator } from '../../tensor/random.js';
import { type GateUpLayout, type MoEConfig, type Orientation, parseMoEConfig } from '../config.js';
import { type HfConfig, isMoeLayer, normalizeHfConfig } from '../hf-config.js';
import { MoELayer } from '../layer.js';
import { type PresetFromHfOptions, type PresetName, presetFromHf, presetNameFromHf } from '../presets.js';
import { dequantizeMxfp4 } from './mxfp4.js';
import { type ExpertsLayout, type View, bankView, copyMat, gateUpBiasOffset, gateUpView, plainView } from './views.js';

export type HfExpertFormat = 'per-expert' | 'fused';

/** What the loader accepts per tensor: readSafetensors entries, or anything with shape + data. */
export interface HfTensorLike {
  dtype?: string;
  shape: readonly number[];
  data: ArrayLike<number>;
}
export type HfTensorSource = Map<string, HfTensorLike> | Record<string, HfTensorLike> | string;

export class HfCheckpointError extends Error {
  override name = 'HfCheckpointError';
  constructor(
    message: string,
    /** Keys the block needs that the checkpoint lacks (empty unless that is the problem). */
    readonly missingKeys: string[] = [],
  ) {
    super(message);
  }
}

interface StackedKeys {
  kind: 'stacked';
  gateUp: string;
  down: string;
  layout: 'fused' | 'interleaved';
  orientation: Orientation;
  gateUpBias: string | null;
  downBias: string | null;
}
interface PerExpertKeys {
  kind: 'per-expert';
  gate: (e: number) => string;
  up: (e: number) => string;
  down: (e: number) => string;
}
/** DBRX: gate, up and down each stacked as [E·I, H] (expert e's rows e·I..; down holds Wdᵀ). */
interface StackedSeparateKeys {
  kind: 'stacked-separate';
  gate: string;
  up: string;
  down: string;
}

/** The checkpoint keys of one MoE block (which exist depends on the config). */
export interface HfBlockKeys {
  preset: PresetName;
  format: HfExpertFormat;
  /** e.g. `model.layers.3.block_sparse_moe.` */
  module: string;
  router: string;
  routerBias: string | null;
  scoreBias: string | null;
  experts: StackedKeys | PerExpertKeys | StackedSeparateKeys;
  shared: { gate: string; up: string; down: string } | null;
  sharedGate: string | null;
}

const MODULE: Record<PresetName, string> = {
  mixtral: 'block_sparse_moe',
  qwen2_moe: 'mlp',
  qwen3_moe: 'mlp',
  olmoe: 'mlp',
  deepseek_v2: 'mlp',
  deepseek_v3: 'mlp',
  gpt_oss: 'mlp',
  granitemoe: 'block_sparse_moe',
  llama4: 'feed_forward',
  dbrx: 'ffn',
  phimoe: 'block_sparse_moe',
};
const SHARED: Partial<Record<PresetName, string>> = {
  qwen2_moe: 'shared_expert',
  deepseek_v2: 'shared_experts',
  deepseek_v3: 'shared_experts',
  llama4: 'shared_expert',
};
const NATIVE_FUSED: readonly PresetName[] = ['gpt_oss', 'granitemoe', 'llama4', 'dbrx'];

/** Where decoder layer N's keys start: `transformer.blocks.N.` for DBRX, else `model.layers.N.`. */
export function hfLayerPrefix(preset: PresetName, layer: number): string {
  return preset === 'dbrx' ? `transformer.blocks.${layer}.` : `model.layers.${layer}.`;
}

/** Which expert formats a preset's checkpoints come in. */
export function hfExpertFormats(preset: PresetName): HfExpertFormat[] {
  return NATIVE_FUSED.includes(preset) ? ['fused'] : ['per-expert', 'fused'];
}

/** The keys of layer N's MoE block for `preset` in `format`, given the block's config. */
export function hfBlockKeys(
  preset: PresetName,
  layer: number,
  cfg: MoEConfig,
  format: HfExpertFormat,
  prefix = hfLayerPrefix(preset, layer),
): HfBlockKeys {
  if (!hfExpertFormats(preset).includes(format)) {
    throw new HfCheckpointError(
      `${preset}: no '${format}' checkpoint format (its experts come as ${hfExpertFormats(preset)
        .map((f) => `'${f}'`)
        .join(' or ')})`,
    );
  }
  const m = `${prefix}${MODULE[preset]}.`;
  let router = `${m}gate.weight`;
  if (preset === 'gpt_oss' || preset === 'llama4') router = `${m}router.weight`;
  if (preset === 'granitemoe' || preset === 'dbrx') router = `${m}router.layer.weight`;
  let experts: StackedKeys | PerExpertKeys | StackedSeparateKeys;
  if (format === 'per-expert') {
    const [g, u, d] = preset === 'mixtral' || preset === 'phimoe' ? ['w1', 'w3', 'w2'] : ['gate_proj', 'up_proj', 'down_proj'];
    experts = {
      kind: 'per-expert',
      gate: (e) => `${m}experts.${e}.${g}.weight`,
      up: (e) => `${m}experts.${e}.${u}.weight`,
      down: (e) => `${m}experts.${e}.${d}.weight`,
    };
  } else if (preset === 'gpt_oss') {
    experts = {
      kind: 'stacked',
      gateUp: `${m}experts.gate_up_proj`,
      down: `${m}experts.down_proj`,
      layout: 'interleaved',
      orientation: 'in-out',
      gateUpBias: `${m}experts.gate_up_proj_bias`,
      downBias: `${m}experts.down_proj_bias`,
    };
  } else if (preset === 'granitemoe') {
    experts = {
      kind: 'stacked',
      gateUp: `${m}input_linear.weight`,
      down: `${m}output_linear.weight`,
      layout: 'fused',
      orientation: 'out-in',
      gateUpBias: null,
      downBias: null,
    };
  } else if (preset === 'dbrx') {
    experts = { kind: 'stacked-separate', gate: `${m}experts.mlp.w1`, up: `${m}experts.mlp.v1`, down: `${m}experts.mlp.w2` };
  } else if (preset === 'llama4') {
    experts = {
      kind: 'stacked',
      gateUp: `${m}experts.gate_up_proj`,
      down: `${m}experts.down_proj`,
      layout: 'fused',
      orientation: 'in-out',
      gateUpBias: null,
      downBias: null,
    };
  } else {
    experts = {
      kind: 'stacked',
      gateUp: `${m}experts.gate_up_proj`,
      down: `${m}experts.down_proj`,
      layout: 'fused',
      orientation: 'out-in',
      gateUpBias: null,
      downBias: null,
    };
  }
  let shared: HfBlockKeys['shared'] = null;
  if (cfg.shared) {
    const s = SHARED[preset];
    if (!s) throw new HfCheckpointError(`${preset}: its checkpoints have no shared expert, but the config has one`);
    shared = { gate: `${m}${s}.gate_proj.weight`, up: `${m}${s}.up_proj.weight`, down: `${m}${s}.down_proj.weight` };
  }
  const sharedGate = cfg.shared?.gate === 'sigmoid' ? (preset === 'qwen2_moe' ? `${m}shared_expert_gate.weight` : null) : null;
  if (cfg.shared?.gate === 'sigmoid' && !sharedGate)
    throw new HfCheckpointError(`${preset}: its checkpoints have no shared-expert gate, but the config has one`);
  return {
    preset,
    format,
    module: m,
    router,
    routerBias: cfg.router.routerBias ? (preset === 'gpt_oss' ? `${m}router.bias` : `${m}gate.bias`) : null,
    scoreBias: cfg.router.selectionBias ? `${m}gate.e_score_correction_bias` : null,
    experts,
    shared,
    sharedGate,
  };
}

// ------------------------------------------------------------------ loading

export interface LoadMoEBlockOptions {
  /** The model's config.json object. */
  config: HfConfig;
  /** Decoder layer index N (keys `model.layers.N.*`). */
  layer: number;
  /** Tensors from readSafetensors(Sync) (its `.tensors` map), a plain record, or a .safetensors path. */
  tensors: HfTensorSource;
  /** Default: from config.model_type. */
  preset?: PresetName;
  /** Default 'auto': per-expert when expert 0's keys are present, else fused. */
  format?: HfExpertFormat | 'auto';
  /** Key prefix before the block's module (default `model.layers.N.`, DBRX `transformer.blocks.N.`). */
  prefix?: string;
  /** DeepSeek-V3's masked groups: 'neg-inf' (default) or 'zero' (transformers <= 4.57); see presetFromHf. */
  groupMaskValue?: 'zero' | 'neg-inf';
  /** Parameter dtype (default 'f32'). */
  dtype?: FloatDType;
  /** The bank's gate/up layout; default: 'separate' for per-expert checkpoints, the checkpoint's own for fused ones. */
  expertLayout?: GateUpLayout;
  /** The bank's orientation; default: the preset's for per-expert checkpoints, the checkpoint's own for fused ones. */
  expertOrientation?: Orientation;
  /** Fail on keys under the block's module that the block does not use (default false). */
  strict?: boolean;
  numLayers?: number;
  generator?: Generator;
}

function asMap(src: HfTensorSource): Map<string, HfTensorLike> {
  if (typeof src === 'string') {
    return readSafetensorsSync(src).tensors;
  }
  return src instanceof Map ? src : new Map(Object.entries(src));
}

const shapeStr = (s: readonly number[]): string => `[${s.join(', ')}]`;

/** The MoE config the loader builds for `preset` from an HF config (the bank layout as given). */
export function hfBlockConfig(preset: PresetName, config: HfConfig, layout?: ExpertsLayout, opts: PresetFromHfOptions = {}): MoEConfig {
  const base = presetFromHf(preset, config, opts);
  if (!layout) return base;
  return parseMoEConfig({ ...base, experts: { ...base.experts, layout: layout.layout, orientation: layout.orientation } });
}

/**
 * Build layer N's MoE block from an HF config and checkpoint tensors, validating every shape
 * (errors name the key, the expected and the actual shape) and listing all missing keys.
 */
export function loadMoEBlockFromHf(opts: LoadMoEBlockOptions): MoELayer {
  const { layer } = opts;
  const config = normalizeHfConfig(opts.config);
  const preset = opts.preset ?? presetNameFromHf(config);
  const maskOpt = { groupMaskValue: opts.groupMaskValue };
  const where = `loadMoEBlockFromHf(${preset}, layer ${layer})`;
  if (!Number.isInteger(layer) || layer < 0) throw new HfCheckpointError(`${where}: layer must be a non-negative integer`);
  if (!isMoeLayer(config, layer))
    throw new HfCheckpointError(
      `${where}: layer ${layer} is a dense layer in this config (see isMoeLayer: mlp_only_layers, first_k_dense_replace, moe_layer_freq, decoder_sparse_step)`,
    );
  const tensors = asMap(opts.tensors);
  const prefix = opts.prefix ?? hfLayerPrefix(preset, layer);

  const base = presetFromHf(preset, config, maskOpt);
  let format = opts.format ?? 'auto';
  if (format === 'auto') {
    const probe = hfExpertFormats(preset).includes('per-expert') ? hfBlockKeys(preset, layer, base, 'per-expert', prefix) : null;
    format = probe && probe.experts.kind === 'per-expert' && tensors.has(probe.experts.gate(0)) ? 'per-expert' : 'fused';
  }
  const probeKeys = hfBlockKeys(preset, layer, base, format, prefix);
  const ex = probeKeys.experts;
  const bankLayout: ExpertsLayout = {
    layout: opts.expertLayout ?? (ex.kind === 'stacked' ? ex.layout : base.experts.layout),
    orientation: opts.expertOrientation ?? (ex.kind === 'stacked' ? ex.orientation : base.experts.orientation),
  };
  const cfg = hfBlockConfig(preset, config, bankLayout, maskOpt);
  const keys = hfBlockKeys(preset, layer, cfg, format, prefix);
  const E = cfg.router.numExperts;
  const H = cfg.hiddenSize;
  const I = cfg.experts.intermediateSize;

  // ---- collect what is needed, report everything missing at once
  const expected = new Map<string, number[]>();
  const need = (k: string | null, shape: number[]) => {
    if (k) expected.set(k, shape);
  };
  need(keys.router, [E, H]);
  need(keys.routerBias, [E]);
  need(keys.scoreBias, [E]);
  const mxfp4 = new Set<string>();
  if (keys.experts.kind === 'per-expert') {
    for (let e = 0; e < E; e++) {
      need(keys.experts.gate(e), [I, H]);
      need(keys.experts.up(e), [I, H]);
      need(keys.experts.down(e), [H, I]);
    }
  } else if (keys.experts.kind === 'stacked-separate') {
    for (const k of [keys.experts.gate, keys.experts.up, keys.experts.down]) need(k, [E * I, H]);
  } else {
    const s = keys.experts;
    for (const [k, shape] of [
      [s.gateUp, s.orientation === 'out-in' ? [E, 2 * I, H] : [E, H, 2 * I]],
      [s.down, s.orientation === 'out-in' ? [E, H, I] : [E, I, H]],
    ] as const) {
      if (!tensors.has(k) && preset === 'gpt_oss' && tensors.has(`${k}_blocks`)) mxfp4.add(k);
      else need(k, [...shape]);
    }
    need(s.gateUpBias, [E, 2 * I]);
    need(s.downBias, [E, H]);
  }
  if (keys.shared) {
    const Is = cfg.shared!.intermediateSize;
    need(keys.shared.gate, [Is, H]);
    need(keys.shared.up, [Is, H]);
    need(keys.shared.down, [H, Is]);
  }
  need(keys.sharedGate, [1, H]);
  const s = keys.experts.kind === 'stacked' ? keys.experts : null;
  for (const k of mxfp4) {
    // GPT-OSS MXFP4: blocks [E, out, in/32, 16], scales [E, out, in/32]; dequantised [E, out, in]
    const [out, inp] = k === s!.gateUp ? [2 * I, H] : [H, I];
    if (inp % 32 !== 0) throw new HfCheckpointError(`${where}: '${k}_blocks' (MXFP4) needs its input size ${inp} to be a multiple of 32`);
    need(`${k}_blocks`, [E, out, inp / 32, 16]);
    need(`${k}_scales`, [E, out, inp / 32]);
  }
  const missing = [...expected.keys()].filter((k) => !tensors.has(k));
  if (missing.length > 0) {
    const shown = missing
      .slice(0, 12)
      .map((k) => `'${k}'`)
      .join(', ');
    throw new HfCheckpointError(
      `${where}: ${missing.length} tensor(s) missing from the checkpoint (format '${format}'): ${shown}${missing.length > 12 ? `, ... (${missing.length - 12} more)` : ''}`,
      missing,
    );
  }
  for (const [k, shape] of expected) {
    const t = tensors.get(k)!;
    if (shapeStr(t.shape) !== shapeStr(shape))
      throw new HfCheckpointError(`${where}: tensor '${k}' has shape ${shapeStr(t.shape)}, expected ${shapeStr(shape)}`);
    if (t.data.length !== shape.reduce((p, d) => p * d, 1))
      throw new HfCheckpointError(`${where}: tensor '${k}' holds ${t.data.length} values for shape ${shapeStr(shape)}`);
    const isInt = t.data instanceof Int32Array || t.dtype === 'I32' || t.dtype === 'I64';
    if (isInt && !k.endsWith('_blocks') && !k.endsWith('_scales'))
      throw new HfCheckpointError(`${where}: tensor '${k}' is an integer tensor (${t.dtype ?? 'Int32Array'}); expected floating point`);
  }
  if (opts.strict) {
    const used = new Set(expected.keys());
    const extra = [...tensors.keys()].filter((k) => k.startsWith(keys.module) && !used.has(k));
    if (extra.length > 0)
      throw new HfCheckpointError(
        `${where}: unexpected tensor(s) under '${keys.module}': ${extra
          .slice(0, 12)
          .map((k) => `'${k}'`)
          .join(', ')}`,
      );
  }
  const get = (k: string): ArrayLike<number> => {
    if (mxfp4.has(k)) {
      const b = tensors.get(`${k}_blocks`)!;
      const sc = tensors.get(`${k}_scales`)!;
      return dequantizeMxfp4(b.data, b.shape, sc.data, sc.shape).data;
    }
    return tensors.get(k)!.data;
  };

  // ---- fill the layer's parameters
  const dtype = opts.dtype ?? 'f32';
  const layerObj = new MoELayer(cfg, { dtype, numLayers: opts.numLayers, generator: opts.generator });
  const alloc = (n: number): Float32Array | Float64Array => (dtype === 'f64' ? new Float64Array(n) : new Float32Array(n));
  const state = new Map<string, Tensor>();
  const put = (name: string, data: Float32Array | Float64Array, shape: readonly number[]) => state.set(name, fromArray(data, shape));
  const copyAll = (k: string, shape: readonly number[]) => {
    const d = alloc(shape.reduce((p, v) => p * v, 1));
    const src = get(k);
    for (let i = 0; i < d.length; i++) d[i] = src[i]!;
    return d;
  };

  put('routerWeight', copyAll(keys.router, [E, H]), [E, H]);
  if (keys.routerBias) put('routerBias', copyAll(keys.routerBias, [E]), [E]);
  if (keys.scoreBias) state.set('scoreBias', fromArray(Float32Array.from(get(keys.scoreBias)), [E]));

  const bank = layerObj.experts;
  const bankArrays = new Map<string, Float32Array | Float64Array>();
  for (const [name, p] of bank.namedParameters()) bankArrays.set(name, alloc(p.size));
  for (let e = 0; e < E; e++) {
    for (const which of ['gate', 'up', 'down'] as const) {
      const [O, In] = which === 'down' ? [H, I] : [I, H];
      const dst = bankView(which, e, bankLayout, I, H);
      let src: ArrayLike<number>;
      let sv: View;
      if (keys.experts.kind === 'per-expert') {
        src = get(keys.experts[which](e));
        sv = plainView(0, O, In, 'out-in');
      } else if (keys.experts.kind === 'stacked-separate') {
        src = get(keys.experts[which]);
        sv = plainView(e, O, In, which === 'down' ? 'in-out' : 'out-in');
      } else if (which === 'down') {
        src = get(keys.experts.down);
        sv = plainView(e, O, In, mxfp4.has(keys.experts.down) ? 'out-in' : keys.experts.orientation);
      } else {
        const st = keys.experts;
        src = get(st.gateUp);
        sv = gateUpView(e, which, st.layout, mxfp4.has(st.gateUp) ? 'out-in' : st.orientation, I, H);
      }
      copyMat(src, sv, bankArrays.get(dst.tensor)!, dst.view, O, In);
    }
  }
  if (s?.gateUpBias && s.downBias) {
    const gub = get(s.gateUpBias);
    const db = get(s.downBias);
    const dGub = bankArrays.get('gateUpBias');
    const dDb = bankArrays.get('downBias');
    if (!dGub || !dDb) throw new HfCheckpointError(`${where}: the checkpoint has expert biases but the bank config has none`);
    if (bankLayout.layout === 'separate') throw new HfCheckpointError(`${where}: expert biases need a fused or interleaved bank layout`);
    for (let e = 0; e < E; e++) {
      for (const which of ['gate', 'up'] as const) {
        for (let o = 0; o < I; o++)
          dGub[gateUpBiasOffset(e, which, o, bankLayout.layout, I)] = gub[gateUpBiasOffset(e, which, o, s.layout, I)]!;
      }
    }
    for (let i = 0; i < E * H; i++) dDb[i] = db[i]!;
  }
  for (const [name, p] of bank.namedParameters()) put(`experts.${name}`, bankArrays.get(name)!, p.shape);

  if (keys.shared) {
    const Is = cfg.shared!.intermediateSize;
    put('sharedExpert.gateProj', copyAll(keys.shared.gate, [Is, H]), [1, Is, H]);
    put('sharedExpert.upProj', copyAll(keys.shared.up, [Is, H]), [1, Is, H]);
    put('sharedExpert.downProj', copyAll(keys.shared.down, [H, Is]), [1, H, Is]);
  }
  if (keys.sharedGate) put('sharedGate', copyAll(keys.sharedGate, [1, H]), [1, H]);
  layerObj.loadStateDict(state, { strict: true });
  return layerObj;
}

// ------------------------------------------------------------------ export

export interface MoeLayerToHfOptions {
  /** Default: 'per-expert' where the model has it, else 'fused'. */
  format?: HfExpertFormat;
  /** Default `model.layers.N.`. */
  prefix?: string;
  /** Stored dtype (default: F64 for an f64 layer, else F32). */
  dtype?: 'F32' | 'F64' | 'F16' | 'BF16';
  /** Export the parameters' gradients (zeros where none) instead of their values, in the same layout. */
  grads?: boolean;
}

/**
 * The inverse of loadMoEBlockFromHf: the layer's weights under `preset`'s checkpoint names and
 * layouts for decoder layer N, ready for writeSafetensors.
 */
export function moeLayerToHfTensors(
  layer: MoELayer,
  preset: PresetName,
  layerIndex: number,
  opts: MoeLayerToHfOptions = {},
): Record<string, SafetensorsTensor> {
  const cfg = layer.cfg;
  const where = `moeLayerToHfTensors(${preset}, layer ${layerIndex})`;
  const wantKind = preset === 'gpt_oss' ? 'gpt-oss' : 'swiglu';
  if (cfg.experts.kind !== wantKind)
    throw new HfCheckpointError(`${where}: ${preset} experts are '${wantKind}', this layer's are '${cfg.experts.kind}'`);
  if (cfg.experts.bias !== (preset === 'gpt_oss'))
    throw new HfCheckpointError(
      `${where}: ${preset} experts ${preset === 'gpt_oss' ? 'have' : 'have no'} biases, this layer's ${cfg.experts.bias ? 'have' : 'have none'}`,
    );
  if (cfg.router.routerBias !== (preset === 'gpt_oss'))
    throw new HfCheckpointError(
      `${where}: ${preset}'s router ${preset === 'gpt_oss' ? 'has' : 'has no'} bias, this layer's ${cfg.router.routerBias ? 'has' : 'has none'}`,
    );
  const format = opts.format ?? hfExpertFormats(preset)[0]!;
  const keys = hfBlockKeys(preset, layerIndex, cfg, format, opts.prefix);
  const E = cfg.router.numExperts;
  const H = cfg.hiddenSize;
  const I = cfg.experts.intermediateSize;
  const f64 = layer.routerWeight.dtype === 'f64';
  const dtype = opts.dtype ?? (f64 ? 'F64' : 'F32');
  const alloc = (n: number): Float32Array | Float64Array => (dtype === 'F64' ? new Float64Array(n) : new Float32Array(n));
  const val = (t: Tensor): ArrayLike<number> => {
    if (!opts.grads) return t.dataSync();
    return t.grad ? t.grad.dataSync() : new Float64Array(t.size);
  };
  const out: Record<string, SafetensorsTensor> = {};
  const emit = (k: string, shape: number[], src: ArrayLike<number>) => {
    const d = alloc(src.length);
    for (let i = 0; i < d.length; i++) d[i] = src[i]!;
    out[k] = { dtype, shape, data: d };
  };
  emit(keys.router, [E, H], val(layer.routerWeight));
  if (keys.routerBias) emit(keys.routerBias, [E], val(layer.routerBias!));
  if (keys.scoreBias) emit(keys.scoreBias, [E], opts.grads ? new Float64Array(E) : layer.selectionBias!.bias.dataSync());

  const L: ExpertsLayout = { layout: cfg.experts.layout, orientation: cfg.experts.orientation };
  const bank = layer.experts;
  const bankData: Record<string, ArrayLike<number>> = {};
  for (const [name, p] of bank.namedParameters()) bankData[name] = val(p);
  const st = keys.experts.kind === 'stacked' ? keys.experts : null;
  const gateUp = st ? alloc(E * 2 * I * H) : null;
  const down = st ? alloc(E * H * I) : null;
  const sep = keys.experts.kind === 'stacked-separate' ? keys.experts : null;
  const sepData = sep ? { gate: alloc(E * I * H), up: alloc(E * I * H), down: alloc(E * I * H) } : null;
  for (let e = 0; e < E; e++) {
    for (const which of ['gate', 'up', 'down'] as const) {
      const [O, In] = which === 'down' ? [H, I] : [I, H];
      const sv = bankView(which, e, L, I, H);
      const src = bankData[sv.tensor]!;
      if (keys.experts.kind === 'per-expert') {
        const d = alloc(O * In);
        copyMat(src, sv.view, d, plainView(0, O, In, 'out-in'), O, In);
        out[keys.experts[which](e)] = { dtype, shape: [O, In], data: d };
      } else if (sepData) {
        copyMat(src, sv.view, sepData[which], plainView(e, O, In, which === 'down' ? 'in-out' : 'out-in'), O, In);
      } else if (which === 'down') {
        copyMat(src, sv.view, down!, plainView(e, O, In, st!.orientation), O, In);
      } else {
        copyMat(src, sv.view, gateUp!, gateUpView(e, which, st!.layout, st!.orientation, I, H), O, In);
      }
    }
  }
  if (sep && sepData)
    for (const which of ['gate', 'up', 'down'] as const) out[sep[which]] = { dtype, shape: [E * I, H], data: sepData[which] };
  if (st) {
    out[st.gateUp] = { dtype, shape: st.orientation === 'out-in' ? [E, 2 * I, H] : [E, H, 2 * I], data: gateUp! };
    out[st.down] = { dtype, shape: st.orientation === 'out-in' ? [E, H, I] : [E, I, H], data: down! };
    if (st.gateUpBias && st.downBias) {
      if (L.layout === 'separate') throw new HfCheckpointError(`${where}: expert biases need a fused or interleaved bank layout`);
      const gub = bankData['gateUpBias']!;
      const d = alloc(E * 2 * I);
      for (let e = 0; e < E; e++) {
        for (const which of ['gate', 'up'] as const) {
          for (let o = 0; o < I; o++) d[gateUpBiasOffset(e, which, o, st.layout, I)] = gub[gateUpBiasOffset(e, which, o, L.layout, I)]!;
        }
      }
      out[st.gateUpBias] = { dtype, shape: [E, 2 * I], data: d };
      emit(st.downBias, [E, H], bankData['downBias']!);
    }
  }
  if (keys.shared) {
    const sh = layer.sharedExpert!;
    const Is = cfg.shared!.intermediateSize;
    emit(keys.shared.gate, [Is, H], val(sh.gateProj!));
    emit(keys.shared.up, [Is, H], val(sh.upProj!));
    emit(keys.shared.down, [H, Is], val(sh.downProj));
  }
  if (keys.sharedGate) emit(keys.sharedGate, [1, H], val(layer.sharedGate!));
  return out;
}
