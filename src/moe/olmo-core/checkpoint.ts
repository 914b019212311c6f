// OLMo-core MoE checkpoints <-> MoELayer (olmo_core.nn.moe; keys relative to the MoE module,
// default prefix `blocks.N.feed_forward_moe.`):
//   router.weight       [E·d] flat (MoELinearRouter; viewed [E, d])
//   router.score_bias   [E] (only with bias_gamma: the aux-loss-free selection bias)
//   MoEType 'default' (MoEMLP, torch.bmm):      experts.mlp.w1, w3 [E·d, h] (viewed [E, d, h]: x·w1),
//                                                experts.mlp.w2     [E·h, d] (viewed [E, h, d]: x1·w2)
//   MoEType 'dropless' (DroplessMoEMLP, grouped GEMM): w1, w3 [E·h, d] (x·w1ᵀ), w2 [E·h, d] (x1·w2)
//   shared_mlp.w1.weight [h_s, d], w3 [h_s, d], w2 [d, h_s] (FeedForward, nn.Linear, no bias)
// Older OLMo-core versions keep the expert weights 3-D ([E, d, h] / [E, h, d]): same bytes, also read.
import { widen } from '../../backend/half-precision.js';
import { type HalfArray, dtypeOfArray, isHalfArray, typedArrayFor } from '../../backend/types.js';
import { type ModuleDType, moduleDType } from '../../nn/dtype-names.js';
import type { SafetensorsTensor } from '../../io/safetensors.js';
import { fromArray } from '../../ops/creation.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { MoEConfig, Orientation } from '../config.js';
import { HfCheckpointError, type HfTensorLike } from '../hf/checkpoint.js';
import { type ExpertsLayout, bankView, copyMat, plainView } from '../hf/views.js';
import { MoELayer } from '../layer.js';
import { MOE_TYPES, type MoEType } from './config.js';

type OlmoCoreMoEType = MoEType;

export const olmoCoreMoEPrefix = (layer: number): string => `blocks.${layer}.feed_forward_moe.`;

/** Expert e's gate / up / down as [out, in] matrices inside OLMo-core's stacked tensors. */
function olmoView(type: OlmoCoreMoEType, which: 'gate' | 'up' | 'down', e: number, d: number, h: number) {
  // default: w1/w3 [E, d, h] hold the gate/up [h, d] transposed; w2 [E, h, d] holds down [d, h] transposed.
  // dropless: w1/w3 [E, h, d] hold gate/up as is; w2 as in default.
  const orient: Orientation = which === 'down' || type === 'default' ? 'in-out' : 'out-in';
  return which === 'down' ? plainView(e, d, h, orient) : plainView(e, h, d, orient);
}

const KEY = { gate: 'experts.mlp.w1', up: 'experts.mlp.w3', down: 'experts.mlp.w2' } as const;

function checkCfg(cfg: MoEConfig, where: string): void {
  if (cfg.experts.kind !== 'swiglu' || cfg.experts.bias)
    throw new HfCheckpointError(
      `${where}: OLMo-core experts are SwiGLU without biases (experts.kind 'swiglu', bias false); got kind '${cfg.experts.kind}', bias ${cfg.experts.bias}`,
    );
  if (cfg.router.routerBias)
    throw new HfCheckpointError(`${where}: OLMo-core's MoELinearRouter has no bias (router.routerBias must be false)`);
  if (cfg.shared?.gate === 'sigmoid')
    throw new HfCheckpointError(`${where}: OLMo-core's shared_mlp has no gate (shared.gate must be 'none')`);
}

export interface LoadOlmoCoreMoEOptions {
  /** The block's config (sizes, router, dispatch; e.g. olmoCorePreset(...)). */
  config: MoEConfig;
  /** The module's tensors (a safetensors `.tensors` map or a plain record). */
  tensors: Map<string, HfTensorLike> | Record<string, HfTensorLike>;
  moeType: OlmoCoreMoEType;
  /** Key prefix (default '': keys relative to the MoE module; olmoCoreMoEPrefix(N) for a whole model). */
  prefix?: string;
  /** The layer's dtype (OLMo-core's names too). bf16 / f16 tensors read with `{ half: 'keep' }` load into a layer of their dtype as bit patterns, without an f32 copy. */
  dtype?: ModuleDType;
  numLayers?: number;
}

/** Build an MoELayer from an OLMo-core MoE module's weights; every shape is checked, all missing keys listed. */
export function loadMoEBlockFromOlmoCore(opts: LoadOlmoCoreMoEOptions): MoELayer {
  const cfg = opts.config;
  const where = `loadMoEBlockFromOlmoCore(${opts.moeType})`;
  if (!MOE_TYPES.includes(opts.moeType)) throw new HfCheckpointError(`${where}: moeType must be 'default' or 'dropless'`);
  checkCfg(cfg, where);
  const tensors = opts.tensors instanceof Map ? opts.tensors : new Map(Object.entries(opts.tensors));
  const p = opts.prefix ?? '';
  const E = cfg.router.numExperts;
  const d = cfg.hiddenSize;
  const h = cfg.experts.intermediateSize;
  const wShape = (k: 'gate' | 'up' | 'down'): number[][] =>
    k === 'down' || opts.moeType === 'dropless'
      ? [
          [E * h, d],
          [E, h, d],
        ]
      : [
          [E * d, h],
          [E, d, h],
        ];
  const expected = new Map<string, number[][]>([[`${p}router.weight`, [[E * d], [E, d]]]]);
  for (const k of ['gate', 'up', 'down'] as const) expected.set(`${p}${KEY[k]}`, wShape(k));
  if (cfg.router.selectionBias) expected.set(`${p}router.score_bias`, [[E]]);
  if (cfg.shared) {
    const hs = cfg.shared.intermediateSize;
    expected.set(`${p}shared_mlp.w1.weight`, [[hs, d]]);
    expected.set(`${p}shared_mlp.w3.weight`, [[hs, d]]);
    expected.set(`${p}shared_mlp.w2.weight`, [[d, hs]]);
  }
  const missing = [...expected.keys()].filter((k) => !tensors.has(k));
  if (missing.length > 0)
    throw new HfCheckpointError(`${where}: ${missing.length} tensor(s) missing: ${missing.map((k) => `'${k}'`).join(', ')}`, missing);
  for (const [k, shapes] of expected) {
    const t = tensors.get(k)!;
    if (!shapes.some((s) => s.join(',') === t.shape.join(','))) {
      throw new HfCheckpointError(
        `${where}: tensor '${k}' has shape [${t.shape.join(', ')}], expected ${shapes.map((s) => `[${s.join(', ')}]`).join(' or ')}`,
      );
    }
  }
  const dtype = moduleDType(opts.dtype ?? 'f32', `${where} dtype`);
  // sources holding this dtype's bit patterns are copied as bits; any other source as values (f32 / f64)
  const bits = (src: ArrayLike<number>) => isHalfArray(src) && dtypeOfArray(src) === dtype;
  const values = (src: ArrayLike<number>): ArrayLike<number> => (isHalfArray(src) && !bits(src) ? widen(src) : src);
  const alloc = (n: number, src: ArrayLike<number>): Float32Array | Float64Array | HalfArray =>
    bits(src) ? (typedArrayFor(dtype, n) as HalfArray) : dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  const copy = (k: string) => {
    const src = tensors.get(k)!.data;
    const out = alloc(src.length, src);
    const v = values(src);
    for (let i = 0; i < out.length; i++) out[i] = v[i]!;
    return out;
  };
  const layer = new MoELayer(cfg, { dtype, numLayers: opts.numLayers });
  const state = new Map<string, Tensor>([['routerWeight', fromArray(copy(`${p}router.weight`), [E, d])]]);
  if (cfg.router.selectionBias)
    state.set('scoreBias', fromArray(Float32Array.from(values(tensors.get(`${p}router.score_bias`)!.data)), [E]));
  const L: ExpertsLayout = { layout: cfg.experts.layout, orientation: cfg.experts.orientation };
  const bank = new Map<string, Float32Array | Float64Array | HalfArray>();
  const expertSrc = tensors.get(`${p}${KEY.gate}`)!.data;
  const sameKind = (['up', 'down'] as const).every((w) => bits(tensors.get(`${p}${KEY[w]}`)!.data) === bits(expertSrc));
  const bankSrc = sameKind ? expertSrc : values(expertSrc);
  for (const [name, t] of layer.experts.namedParameters()) bank.set(name, alloc(t.size, bankSrc));
  for (let e = 0; e < E; e++) {
    for (const which of ['gate', 'up', 'down'] as const) {
      const [O, In] = which === 'down' ? [d, h] : [h, d];
      const dst = bankView(which, e, L, h, d);
      const src = tensors.get(`${p}${KEY[which]}`)!.data;
      copyMat(sameKind ? src : values(src), olmoView(opts.moeType, which, e, d, h), bank.get(dst.tensor)!, dst.view, O, In);
    }
  }
  for (const [name, t] of layer.experts.namedParameters()) state.set(`experts.${name}`, fromArray(bank.get(name)!, t.shape));
  if (cfg.shared) {
    const hs = cfg.shared.intermediateSize;
    state.set('sharedExpert.gateProj', fromArray(copy(`${p}shared_mlp.w1.weight`), [1, hs, d]));
    state.set('sharedExpert.upProj', fromArray(copy(`${p}shared_mlp.w3.weight`), [1, hs, d]));
    state.set('sharedExpert.downProj', fromArray(copy(`${p}shared_mlp.w2.weight`), [1, d, hs]));
  }
  layer.loadStateDict(state, { strict: true });
  return layer;
}

export interface MoeLayerToOlmoCoreOptions {
  moeType: OlmoCoreMoEType;
  prefix?: string;
  /** Stored dtype (default F32, F64 for an f64 layer). */
  dtype?: 'F32' | 'F64' | 'F16' | 'BF16';
  /** Write the expert weights 3-D ([E, d, h] / [E, h, d]) as older OLMo-core versions do (default: flat). */
  threeD?: boolean;
}

/** The inverse of loadMoEBlockFromOlmoCore: the layer's weights under OLMo-core's names and layouts. */
export function moeLayerToOlmoCoreTensors(layer: MoELayer, opts: MoeLayerToOlmoCoreOptions): Record<string, SafetensorsTensor> {
  const cfg = layer.cfg;
  checkCfg(cfg, `moeLayerToOlmoCoreTensors(${opts.moeType})`);
  const p = opts.prefix ?? '';
  const E = cfg.router.numExperts;
  const d = cfg.hiddenSize;
  const h = cfg.experts.intermediateSize;
  const dtype = opts.dtype ?? (layer.routerWeight.dtype === 'f64' ? 'F64' : 'F32');
  const alloc = (n: number): Float32Array | Float64Array => (dtype === 'F64' ? new Float64Array(n) : new Float32Array(n));
  const out: Record<string, SafetensorsTensor> = {};
  const emit = (k: string, shape: number[], src: ArrayLike<number>) => {
    const a = alloc(src.length);
    for (let i = 0; i < a.length; i++) a[i] = src[i]!;
    out[k] = { dtype, shape, data: a };
  };
  emit(`${p}router.weight`, [E * d], layer.routerWeight.dataSync());
  if (layer.selectionBias) emit(`${p}router.score_bias`, [E], layer.selectionBias.bias.dataSync());
  const L: ExpertsLayout = { layout: cfg.experts.layout, orientation: cfg.experts.orientation };
  const bank: Record<string, ArrayLike<number>> = {};
  for (const [name, t] of layer.experts.namedParameters()) bank[name] = t.dataSync();
  for (const which of ['gate', 'up', 'down'] as const) {
    const dst = alloc(E * d * h);
    const [O, In] = which === 'down' ? [d, h] : [h, d];
    for (let e = 0; e < E; e++) {
      const src = bankView(which, e, L, h, d);
      copyMat(bank[src.tensor]!, src.view, dst, olmoView(opts.moeType, which, e, d, h), O, In);
    }
    const rowsPerExpert = which === 'down' || opts.moeType === 'dropless' ? h : d;
    out[`${p}${KEY[which]}`] = {
      dtype,
      shape: opts.threeD ? [E, rowsPerExpert, (d * h) / rowsPerExpert] : [E * rowsPerExpert, (d * h) / rowsPerExpert],
      data: dst,
    };
  }
  if (cfg.shared && layer.sharedExpert) {
    const hs = cfg.shared.intermediateSize;
    emit(`${p}shared_mlp.w1.weight`, [hs, d], layer.sharedExpert.gateProj!.dataSync());
    emit(`${p}shared_mlp.w3.weight`, [hs, d], layer.sharedExpert.upProj!.dataSync());
    emit(`${p}shared_mlp.w2.weight`, [d, hs], layer.sharedExpert.downProj.dataSync());
  }
  return out;
}
