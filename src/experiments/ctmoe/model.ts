// The seed's model: a pre-LN GPT (learned absolute positions, dropout after the embeddings,
// causal attention with no qkv/proj biases and dropout only on the attention weights, a CT-MoE
// block — the core MoELayer with ctMoePreset and the seed's init — as the FFN of every block,
// final LayerNorm, head tied to the embedding, N(0, 0.02) init), and its loss:
//   total = CE + (sum over layers of lb_weight * lb) / n_layers      (PPL from CE only)
// Each layer's lb_weight / n_layers · lb rides on its output (attachAuxLoss), so differentiating
// the CE differentiates the total; `total` adds the aux value for the logs.
import { GPT } from '../../nn/gpt.js';
import { Dropout } from '../../nn/layers.js';
import { Module, type Parameter } from '../../nn/module.js';
import { add } from '../../ops/elementwise.js';
import type { Tensor } from '../../tensor/tensor.js';
import { type ExpertShard, MoELayer } from '../../moe/layer.js';
import { ctMoePreset } from '../../moe/topology/preset.js';
import { DenseDispatcher } from '../../moe/topology/dense-dispatcher.js';
import { fullLike } from '../../moe/tensors.js';
import { ExpertParallelMoeBlock } from '../../dist/ep-block.js';
import type { CtMoeExperimentConfig, VariantFlags } from './config.js';

export interface CtMoeLoss {
  /** CE + the scaled LB terms in value; its backward is CE's, the LB terms' gradients ride on the layers' outputs. */
  total: Tensor;
  ce: Tensor;
  /** (sum lb_weight * lb) / n_layers of this forward, or null (not training with grad: no aux losses). */
  aux: number | null;
}

export class CtMoeGPT extends Module {
  readonly gpt: GPT;

  /** expertShard: each MoE layer holds only these experts (expert parallelism, src/dist/expert-parallel.ts). */
  constructor(cfg: CtMoeExperimentConfig, flags: VariantFlags, expertShard?: ExpertShard) {
    super();
    const moe = ctMoePreset(cfg.dModel, cfg.numExperts, cfg.topK, {
      routingScale: cfg.routingScale,
      collabScale: cfg.collabScale,
      sTemp: cfg.sTemp,
      useTopology: flags.useTopology,
      useGraphRouting: flags.useGraphRouting,
      useGraphCollab: flags.useGraphCollab,
      lbWeight: cfg.lbWeight,
    });
    this.gpt = new GPT({
      vocabSize: cfg.vocabSize,
      seqLen: cfg.seqLen,
      dModel: cfg.dModel,
      nHead: cfg.nHead,
      nLayer: cfg.nLayer,
      dropout: cfg.dropout,
      bias: true, // LayerNorms keep their biases (nn.LayerNorm); attention's are removed below
      tieEmbeddings: true,
      ffn: () =>
        new MoELayer(moe, {
          init: 'ct-moe',
          numLayers: cfg.nLayer,
          ...(expertShard ? { expertShard } : {}),
          ...(cfg.expertCompute === 'dense' ? { dispatcher: new DenseDispatcher(cfg.numExperts, moe.dispatch) } : {}),
        }),
    });
    // the seed's attention: qkv = Linear(D, 3D, bias=False), proj = Linear(D, D, bias=False),
    // dropout only inside SDPA (no residual dropout after proj; none after the MoE either)
    for (const b of this.gpt.blocks) {
      (b.attn.qkv as { bias: Parameter | null }).bias = null;
      (b.attn.proj as { bias: Parameter | null }).bias = null;
      (b.attn as { residDropout: Dropout }).residDropout = new Dropout(0);
    }
  }

  /** The MoE layers, block order (inside their expert-parallel blocks under --parallel ep; a getter: not a second discovery path for the parameters). */
  get moeLayers(): MoELayer[] {
    return this.gpt.blocks.map((b) => (b.ffn instanceof ExpertParallelMoeBlock ? b.ffn.layer : (b.ffn as MoELayer)));
  }

  /** The S_raw parameters (their own optimiser group). */
  topologyParameters(): Parameter[] {
    return this.moeLayers.flatMap((l) => l.topologyParameters());
  }

  /** Everything else. */
  otherParameters(): Parameter[] {
    const s = new Set<Parameter>(this.topologyParameters());
    return this.parameters().filter((p) => !s.has(p));
  }

  /** ids, targets i32 [B, T]. */
  loss(ids: Tensor, targets: Tensor): CtMoeLoss {
    const ce = this.gpt.loss(ids, targets);
    let aux: number | null = null;
    let onDevice: Tensor | null = null; // the 'device' path's values, summed where they are
    for (const l of this.moeLayers) {
      const scaled = l.scaledLbLoss();
      if (typeof scaled === 'number') aux = (aux ?? 0) + scaled;
      else if (scaled) onDevice = onDevice ? add(onDevice, scaled) : scaled;
    }
    const total = aux === null ? ce : add(ce, fullLike(ce, ce.shape, aux));
    return { total: onDevice ? add(total, onDevice) : total, ce, aux };
  }
}
