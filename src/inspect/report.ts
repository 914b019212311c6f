// `inspectModel`: the whole-model report behind `moekit inspect` (layer map, parameters,
// FLOPs per token, weight memory), and its terminal rendering.
import type { HfConfig } from '../moe/hf-config.js';
import { type FlopsPerToken, flopsPerToken } from './flops.js';
import { type WeightMemory, weightMemory } from './memory.js';
import { type AttentionKind, type ModelSpec, modelSpecFromHf } from './model-spec.js';
import { type ModelParamCounts, countModelParams } from './params.js';

export interface LayerRow {
  index: number;
  ffn: 'dense' | 'moe';
  attention: AttentionKind;
  /** 0 for a dense layer. */
  experts: number;
  topK: number;
  /** Shared-expert width (0 = none). */
  shared: number;
  /** Expert width (MoE) or MLP width (dense). */
  width: number;
  router: string;
  params: number;
  activeParams: number;
}

export interface InspectReport {
  modelType: string;
  spec: ModelSpec;
  layers: LayerRow[];
  params: ModelParamCounts;
  flops: FlopsPerToken;
  memory: WeightMemory;
}

export interface InspectOptions {
  /** Sequence length for the attention term of the FLOPs (default 4096). */
  seqLen?: number;
}

export function inspectSpec(spec: ModelSpec, opts: InspectOptions = {}): InspectReport {
  const params = countModelParams(spec);
  const layers = spec.layers.map(
    (f, index): LayerRow => ({
      index,
      ffn: f.kind,
      attention: spec.attention.kind,
      experts: f.kind === 'moe' ? f.numExperts : 0,
      topK: f.kind === 'moe' ? f.topK : 0,
      shared: f.kind === 'moe' ? f.sharedIntermediateSize : 0,
      width: f.kind === 'moe' ? f.expertIntermediateSize : f.intermediateSize,
      router: f.kind === 'moe' ? f.routing : '-',
      params: params.perLayer[index]!.total,
      activeParams: params.perLayer[index]!.active,
    }),
  );
  return {
    modelType: spec.modelType,
    spec,
    layers,
    params,
    flops: flopsPerToken(spec, params, opts.seqLen ?? 4096),
    memory: weightMemory(spec, params),
  };
}

/** The report of an HF config.json object. */
export function inspectModel(config: HfConfig, opts: InspectOptions = {}): InspectReport {
  return inspectSpec(modelSpecFromHf(config), opts);
}

// ------------------------------------------------------------------ rendering

/** 46_702_792_704 -> '46.70B'; small counts stay exact. */
export function humanCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 2)} ${units[u]}`;
}

/** A plain text table: the first row is the header, columns padded to their widest cell. */
export function textTable(rows: string[][], rightAlign: readonly number[] = []): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((cell, c) => (rightAlign.includes(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

/** Consecutive identical layers collapse into one row ("0-31"). */
function layerRuns(layers: LayerRow[]): { from: number; to: number; row: LayerRow }[] {
  const runs: { from: number; to: number; row: LayerRow }[] = [];
  const same = (a: LayerRow, b: LayerRow) =>
    a.ffn === b.ffn &&
    a.experts === b.experts &&
    a.topK === b.topK &&
    a.shared === b.shared &&
    a.width === b.width &&
    a.params === b.params;
  for (const l of layers) {
    const last = runs[runs.length - 1];
    if (last && same(last.row, l)) last.to = l.index;
    else runs.push({ from: l.index, to: l.index, row: l });
  }
  return runs;
}

export function formatInspectReport(r: InspectReport): string {
  const s = r.spec;
  const a = s.attention;
  const attn = a.mla
    ? `MLA, ${a.numHeads} heads, kv_lora_rank ${a.mla.kvLoraRank}, q_lora_rank ${a.mla.qLoraRank ?? 'none'}, qk ${a.mla.qkNopeHeadDim}+${a.mla.qkRopeHeadDim}, v ${a.mla.vHeadDim}`
    : `${a.kind}, ${a.numHeads} heads, ${a.numKvHeads} kv heads, head_dim ${a.headDim}`;
  const out: string[] = [];
  out.push(
    `${r.modelType}: ${s.numLayers} layers, hidden ${s.hiddenSize}, vocab ${s.vocabSize}, ${s.tieEmbeddings ? 'tied' : 'untied'} embeddings, ${s.norm}`,
  );
  out.push(`attention: ${attn}`);
  for (const n of s.notes) out.push(`note: ${n}`);
  out.push('');
  const rows = [['layers', 'ffn', 'experts', 'top-k', 'shared', 'width', 'params', 'active', 'router']];
  for (const run of layerRuns(r.layers)) {
    const l = run.row;
    rows.push([
      run.from === run.to ? String(run.from) : `${run.from}-${run.to}`,
      l.ffn,
      l.ffn === 'moe' ? String(l.experts) : '-',
      l.ffn === 'moe' ? String(l.topK) : '-',
      l.shared ? String(l.shared) : '-',
      String(l.width),
      humanCount(l.params),
      humanCount(l.activeParams),
      l.router,
    ]);
  }
  out.push(textTable(rows, [2, 3, 4, 5, 6, 7]));
  out.push('');
  const t = r.params.byPart.total;
  const ac = r.params.byPart.active;
  const parts: [string, keyof typeof t][] = [
    ['embedding', 'embedding'],
    ['attention', 'attention'],
    ['norms', 'norms'],
    ['dense MLPs', 'denseMlp'],
    ['routers', 'router'],
    ['routed experts', 'experts'],
    ['shared experts', 'sharedExperts'],
    ['head', 'head'],
    ['outside the decoder', 'extra'],
  ];
  const prow = [['parameters', 'total', 'active']];
  for (const [name, k] of parts) if (t[k] > 0) prow.push([name, t[k].toLocaleString('en-US'), ac[k].toLocaleString('en-US')]);
  prow.push([
    'all',
    `${r.params.total.toLocaleString('en-US')} (${humanCount(r.params.total)})`,
    `${r.params.active.toLocaleString('en-US')} (${humanCount(r.params.active)})`,
  ]);
  prow.push(['all but the input embedding', humanCount(r.params.totalNonEmbedding), humanCount(r.params.activeNonEmbedding)]);
  out.push(textTable(prow, [1, 2]));
  out.push('');
  const f = r.flops;
  out.push(
    textTable(
      [
        [`FLOPs per token (seq ${f.seqLen})`, 'value'],
        ['forward (2N + attention)', f.forward.toExponential(3)],
        ['training (3 x forward)', f.training.toExponential(3)],
        ['training, OLMo-core num_flops_per_token', f.olmoCore.toExponential(3)],
        ['training, 6N rule', f.sixN.toExponential(3)],
      ],
      [1],
    ),
  );
  out.push('');
  out.push(
    textTable(
      [
        ['weights', 'memory'],
        ['fp32', humanBytes(r.memory.fp32)],
        ['bf16', humanBytes(r.memory.bf16)],
        ['MXFP4 experts, bf16 rest', humanBytes(r.memory.mxfp4)],
      ],
      [1],
    ),
  );
  return out.join('\n');
}
