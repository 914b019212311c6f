// The seed's model: a pre-LN GPT (learned absolute positions, dropout after the embeddings,
// causal attention with no qkv/proj biases and dropout only on the attention weights, a CT-MoE layer as the FFN of every block, final
// LayerNorm, head tied to the embedding, N(0, 0.02) init), and its loss:
//   total = CE + (sum over layers of lb_weight * lb) / n_layers      (PPL from CE only)
import { GPT } from '../../nn/gpt.js';
import { Dropout } from '../../nn/layers.js';
import { Module, type Parameter } from '../../nn/module.js';
import { add } from '../../ops/elementwise.js';
import type { Tensor } from '../../tensor/tensor.js';
import { CtMoeLayer, ctMoeAuxLoss } from '../../moe/topology/layer.js';
import type { CtMoeExperimentConfig, VariantFlags } from './config.js';

export interface CtMoeLoss {
  /** CE + scaled LB (what is differentiated). */
  total: Tensor;
  ce: Tensor;
  /** (sum lb_weight * lb) / n_layers, or null (no MoE layers ran). */
  aux: Tensor | null;
}

export class CtMoeGPT extends Module {
  readonly gpt: GPT;
  readonly lbWeight: number;

  constructor(cfg: CtMoeExperimentConfig, flags: VariantFlags) {
    super();
    this.lbWeight = cfg.lbWeight;
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
        new CtMoeLayer({
          dModel: cfg.dModel,
          numExperts: cfg.numExperts,
          topK: cfg.topK,
          routingScale: cfg.routingScale,
          collabScale: cfg.collabScale,
          sTemp: cfg.sTemp,
          useTopology: flags.useTopology,
          useGraphRouting: flags.useGraphRouting,
          useGraphCollab: flags.useGraphCollab,
          expertCompute: cfg.expertCompute,
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

  /** The MoE layers, block order (a getter: not a second discovery path for the parameters). */
  get moeLayers(): CtMoeLayer[] {
    return this.gpt.blocks.map((b) => b.ffn as CtMoeLayer);
  }

  /** The S_raw parameters (their own optimiser group). */
  topologyParameters(): Parameter[] {
    return this.moeLayers.flatMap((l) => (l.topology ? [l.topology.sRaw] : []));
  }

  /** Everything else. */
  otherParameters(): Parameter[] {
    const s = new Set<Parameter>(this.topologyParameters());
    return this.parameters().filter((p) => !s.has(p));
  }

  /** ids, targets i32 [B, T]. */
  loss(ids: Tensor, targets: Tensor): CtMoeLoss {
    const ce = this.gpt.loss(ids, targets);
    const aux = ctMoeAuxLoss(this.moeLayers, this.lbWeight);
    return { total: aux ? add(ce, aux) : ce, ce, aux };
  }
}
