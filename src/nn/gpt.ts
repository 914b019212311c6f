// A small GPT (nanoGPT's model, top to bottom): token + learned position embeddings, pre-LN
// transformer blocks with a pluggable FFN (an MoE layer slots in here), final LayerNorm,
// and an LM head tied to the token embedding.
import type { FloatDType } from '../backend/types.js';
import { arange } from '../ops/creation.js';
import { crossEntropy } from '../ops/loss.js';
import { shapeToString } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { CausalSelfAttention } from './attention.js';
import { normal_, ones_, zeros_ } from './init.js';
import { Dropout, Embedding, GELU, LayerNorm, Linear } from './layers.js';
import { Module, type UnaryModule } from './module.js';

export interface GPTConfig {
  vocabSize: number;
  /** Longest sequence (size of the position table). */
  seqLen: number;
  dModel: number;
  nHead: number;
  nLayer: number;
  /** Dropout after embeddings, on attention weights, after attention and FFN outputs (default 0). */
  dropout?: number;
  /** Biases in Linear layers and LayerNorms (default true). */
  bias?: boolean;
  /** logits = h · wteᵀ (default true); false adds an untied `lmHead` Linear(D, V). */
  tieEmbeddings?: boolean;
  /**
   * Builds layer i's feed-forward block (default: MLP D -> 4D -> GELU -> D). A custom FFN keeps
   * its own init; the GPT's N(0, 0.02) init covers only the standard parts.
   */
  ffn?: (layerIndex: number) => UnaryModule;
  dtype?: FloatDType;
}

/** Throws a RangeError naming the field, its value and what is allowed. */
export function validateGPTConfig(c: GPTConfig): void {
  for (const field of ['vocabSize', 'seqLen', 'dModel', 'nHead', 'nLayer'] as const) {
    const v = c[field];
    if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`GPTConfig.${field} must be an integer >= 1 (got ${v})`);
  }
  if (c.dModel % c.nHead !== 0) {
    throw new RangeError(`GPTConfig.dModel (${c.dModel}) must be divisible by GPTConfig.nHead (${c.nHead})`);
  }
  const p = c.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw new RangeError(`GPTConfig.dropout must be in [0, 1) (got ${p})`);
  if (c.ffn !== undefined && typeof c.ffn !== 'function') throw new TypeError('GPTConfig.ffn must be a function (layerIndex) => Module');
}

/** The default FFN: Linear(D, 4D) -> GELU -> Linear(4D, D) -> dropout. */
export class MLP extends Module {
  readonly fc: Linear;
  readonly act = new GELU();
  readonly proj: Linear;
  readonly dropout: Dropout;

  constructor(dModel: number, options: { dropout?: number; bias?: boolean; dtype?: FloatDType } = {}) {
    super();
    this.fc = new Linear(dModel, 4 * dModel, { bias: options.bias, dtype: options.dtype });
    this.proj = new Linear(4 * dModel, dModel, { bias: options.bias, dtype: options.dtype });
    this.dropout = new Dropout(options.dropout ?? 0);
  }

  forward(x: Tensor): Tensor {
    return this.dropout.forward(this.proj.forward(this.act.forward(this.fc.forward(x))));
  }
}

/** Pre-LN block: x = x + attn(ln1(x)); x = x + ffn(ln2(x)). */
export class Block extends Module {
  readonly ln1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln2: LayerNorm;
  readonly ffn: UnaryModule;

  constructor(c: GPTConfig, layerIndex: number) {
    super();
    const bias = c.bias ?? true;
    this.ln1 = new LayerNorm(c.dModel, { bias, dtype: c.dtype });
    this.attn = new CausalSelfAttention({ dModel: c.dModel, nHead: c.nHead, dropout: c.dropout ?? 0, bias, dtype: c.dtype });
    this.ln2 = new LayerNorm(c.dModel, { bias, dtype: c.dtype });
    this.ffn = c.ffn ? c.ffn(layerIndex) : new MLP(c.dModel, { dropout: c.dropout ?? 0, bias, dtype: c.dtype });
  }

  forward(x: Tensor): Tensor {
    const h = x.add(this.attn.forward(this.ln1.forward(x)));
    return h.add(this.ffn.forward(this.ln2.forward(h)));
  }
}

export class GPT extends Module {
  readonly config: Readonly<GPTConfig>;
  /** Token embedding [V, D]; also the LM head when tied. */
  readonly wte: Embedding;
  /** Position embedding [seqLen, D]. */
  readonly wpe: Embedding;
  readonly drop: Dropout;
  readonly blocks: Block[];
  readonly lnF: LayerNorm;
  readonly lmHead: Linear | null;

  constructor(config: GPTConfig) {
    super();
    validateGPTConfig(config);
    this.config = Object.freeze({ ...config });
    const c = config;
    this.wte = new Embedding(c.vocabSize, c.dModel, { dtype: c.dtype });
    this.wpe = new Embedding(c.seqLen, c.dModel, { dtype: c.dtype });
    this.drop = new Dropout(c.dropout ?? 0);
    this.blocks = Array.from({ length: c.nLayer }, (_, i) => new Block(c, i));
    this.lnF = new LayerNorm(c.dModel, { bias: c.bias ?? true, dtype: c.dtype });
    this.lmHead = (c.tieEmbeddings ?? true) ? null : new Linear(c.dModel, c.vocabSize, { bias: false, dtype: c.dtype });
    this.initWeights();
  }

  /** nanoGPT init: Linear / Embedding weights N(0, 0.02), biases 0, LayerNorm 1 / 0; custom FFNs untouched. */
  private initWeights(): void {
    const custom = new Set<Module>();
    if (this.config.ffn) for (const b of this.blocks) for (const m of b.ffn.modules()) custom.add(m);
    for (const m of this.modules()) {
      if (custom.has(m)) continue;
      if (m instanceof Linear) {
        normal_(m.weight, 0, 0.02);
        if (m.bias) zeros_(m.bias);
      } else if (m instanceof Embedding) {
        normal_(m.weight, 0, 0.02);
      } else if (m instanceof LayerNorm) {
        if (m.weight) ones_(m.weight);
        if (m.bias) zeros_(m.bias);
      }
    }
  }

  /** ids i32 [B, T] -> final hidden states [B, T, D] (after lnF). */
  hidden(ids: Tensor): Tensor {
    const { seqLen, vocabSize } = this.config;
    if (ids.dtype !== 'i32') throw new TypeError(`GPT: ids must have dtype i32 (got ${ids.dtype})`);
    if (ids.ndim !== 2) throw new RangeError(`GPT: ids must be [B, T] (got shape ${shapeToString(ids.shape)})`);
    const T = ids.shape[1]!;
    if (T > seqLen) throw new RangeError(`GPT: input length T=${T} exceeds GPTConfig.seqLen=${seqLen} (allowed 1..${seqLen})`);
    // ids on a device are not read back to check them (a forward never waits for the GPU)
    const data = ids.backend.onDevice ? [] : ids.dataSync();
    for (let i = 0; i < data.length; i++) {
      const id = data[i]!;
      if (id < 0 || id >= vocabSize) throw new RangeError(`GPT: token id ${id} at flat position ${i} is outside [0, ${vocabSize})`);
    }
    const pos = this.wpe.forward(arange(T)); // [T, D], broadcast over B
    let x = this.drop.forward(this.wte.forward(ids).add(pos));
    for (const block of this.blocks) x = block.forward(x);
    return this.lnF.forward(x);
  }

  /** ids i32 [B, T] -> logits [B, T, V]. */
  forward(ids: Tensor): Tensor {
    const h = this.hidden(ids);
    return this.lmHead ? this.lmHead.forward(h) : h.matmul(this.wte.weight, { transB: true });
  }

  /** Mean next-token cross-entropy; targets i32 [B, T] (ignoreIndex -100 skips a position). */
  loss(ids: Tensor, targets: Tensor): Tensor {
    if (targets.ndim !== 2 || targets.shape[0] !== ids.shape[0] || targets.shape[1] !== ids.shape[1]) {
      throw new RangeError(`GPT.loss: targets ${shapeToString(targets.shape)} must have the shape of ids ${shapeToString(ids.shape)}`);
    }
    return crossEntropy(this.forward(ids), targets);
  }
}
