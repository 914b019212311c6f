// Hierarchical experts on real text: a universal level, a domain level (code / prose) and a
// "language" level of four text varieties, trained briefly as a next-token model with a
// parent regulariser, a child-specialisation loss, a bridge loss and expert-reported losses.
//
//   node --import tsx examples/hierarchy/train.ts [steps]
//
// Data (installed npm packages only, nothing downloaded): the corpora of src/data. Only
// TypeScript and English are installed, so the third level is honest about what it is:
// varieties within each domain rather than different programming / natural languages.
//   code  -> ts-api       effect's public module files (JSDoc-heavy API surface)
//            ts-internal  effect's `internal/` implementation files
//   prose -> sotu-early   State of the Union addresses 1790-1899
//            sotu-modern  State of the Union addresses 1900-
import {
  AdamW,
  CausalSelfAttention,
  Embedding,
  GELU,
  Generator,
  LayerNorm,
  Linear,
  Module,
  type Tensor,
  clipGradNorm,
  crossEntropy,
  fromArray,
  manualSeed,
  noGrad,
} from '../../src/index.js';
import { BpeTokenizer, loadDomainCorpus, splitTrainVal } from '../../src/data/index.js';
import {
  type ExpertBatch,
  type ExpertResult,
  HierarchicalMoE,
  type HierarchyOutput,
  LossAPI,
  hierarchyConfig,
} from '../../src/moe/hierarchy/index.js';

const STEPS = Number(process.argv[2] ?? 150);
const LOG_EVERY = 25;
const VOCAB = 2048;
const H = 64;
const T = 32;
const PER_VARIETY = 4; // batch = 4 varieties x 4 windows
const TRAIN_TOKENS = 60_000;
const VAL_TOKENS = 8_000;

manualSeed(0);
const gen = new Generator(1);

// ---------------------------------------------------------------- data
interface Variety {
  name: string;
  domain: 'code' | 'prose';
  train: Int32Array;
  val: Int32Array;
}

const tok = BpeTokenizer.gpt2(VOCAB);
function encodeUpTo(docs: readonly string[], budget: number): Int32Array {
  const out: number[] = [];
  for (const d of docs) {
    for (const id of tok.encode(d)) out.push(id);
    if (out.length >= budget) break;
  }
  return Int32Array.from(out.slice(0, budget));
}
function variety(name: string, domain: 'code' | 'prose', pick: (docName: string) => boolean): Variety {
  const c = loadDomainCorpus(domain);
  const docs = c.documents.filter((_, i) => pick(c.names[i]!));
  const split = splitTrainVal(docs, 0.1);
  return { name, domain, train: encodeUpTo(split.train, TRAIN_TOKENS), val: encodeUpTo(split.val, VAL_TOKENS) };
}
const t0 = Date.now();
const varieties: Variety[] = [
  variety('ts-api', 'code', (n) => !n.includes('internal/')),
  variety('ts-internal', 'code', (n) => n.includes('internal/')),
  variety('sotu-early', 'prose', (n) => Number(n.slice(0, 4)) < 1900),
  variety('sotu-modern', 'prose', (n) => Number(n.slice(0, 4)) >= 1900),
];
console.log(`data: ${varieties.map((v) => `${v.name} ${v.train.length}/${v.val.length} tok`).join(', ')} (${Date.now() - t0} ms)`);

interface Batch {
  ids: Tensor;
  targets: Tensor;
  labels: Tensor;
  routing: { domain: string[]; language: string[] };
}
function batch(split: 'train' | 'val', draw: () => number): Batch {
  const B = varieties.length * PER_VARIETY;
  const ids = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const labels = new Int32Array(B);
  const domain: string[] = [];
  const language: string[] = [];
  varieties.forEach((v, vi) => {
    const toks = v[split];
    for (let k = 0; k < PER_VARIETY; k++) {
      const b = vi * PER_VARIETY + k;
      const start = Math.floor(draw() * (toks.length - T - 1));
      ids.set(toks.subarray(start, start + T), b * T);
      targets.set(toks.subarray(start + 1, start + T + 1), b * T);
      labels[b] = vi;
      domain.push(v.domain);
      language.push(v.name);
    }
  });
  return {
    ids: fromArray(ids, [B, T]),
    targets: fromArray(targets, [B, T]),
    labels: fromArray(labels, [B]),
    routing: { domain, language },
  };
}

// ---------------------------------------------------------------- model
/** Pre-LN residual MLP; reports how far it moves its input ('delta') as an expert loss. */
class ResidualMLPExpert extends Module {
  readonly ln = new LayerNorm(H);
  readonly fc = new Linear(H, 2 * H, { generator: gen });
  readonly act = new GELU();
  readonly proj = new Linear(2 * H, H, { generator: gen });
  forward(batch: ExpertBatch): ExpertResult {
    const delta = this.proj.forward(this.act.forward(this.fc.forward(this.ln.forward(batch.hidden))));
    return { hidden: batch.hidden.add(delta), losses: { delta: delta.square().mean() } };
  }
}

const config = hierarchyConfig({
  hiddenSize: H,
  levels: [
    { name: 'universal', experts: [{ name: 'core' }] },
    {
      name: 'domain',
      experts: [
        { name: 'code', lossWeight: 0.01 },
        { name: 'prose', lossWeight: 0.01 },
      ],
    },
    {
      name: 'language',
      // children learn from their own losses and the fused output, but cannot pull their parents
      experts: varieties.map((v) => ({ name: v.name, lossWeight: 0.01, stopGradientFromParent: true, metadata: { domain: v.domain } })),
    },
  ],
  useLearnedFusion: true,
  fusionDropout: 0.1,
});

class HierarchicalLM extends Module {
  readonly tokEmb = new Embedding(VOCAB, H, { generator: gen });
  readonly posEmb = new Embedding(T, H, { generator: gen });
  readonly ln1 = new LayerNorm(H);
  readonly attn = new CausalSelfAttention({ dModel: H, nHead: 4 });
  readonly hierarchy = new HierarchicalMoE(config, () => new ResidualMLPExpert());
  readonly lnF = new LayerNorm(H);
  readonly head = new Linear(H, VOCAB, { generator: gen });
  /** Variety classifier on the language level (the child-specialisation loss). */
  readonly probe = new Linear(H, varieties.length, { generator: gen });

  encode(ids: Tensor): Tensor {
    const pos = fromArray(
      Int32Array.from({ length: T }, (_, i) => i),
      [T],
    );
    const x = this.tokEmb.forward(ids).add(this.posEmb.forward(pos));
    return x.add(this.attn.forward(this.ln1.forward(x)));
  }

  logits(hidden: Tensor): Tensor {
    return this.head.forward(this.lnF.forward(hidden));
  }

  forward(b: Batch): HierarchyOutput {
    return this.hierarchy.forward(this.encode(b.ids), { routing: b.routing });
  }
}

const model = new HierarchicalLM();
const lm = (hidden: Tensor, b: Batch): Tensor => crossEntropy(model.logits(hidden), b.targets);

const losses = new LossAPI<Batch>()
  .addGlobal('lm', (out, b) => lm(out.fusedHidden, b))
  // parent regularisation: the universal level alone must stay a usable generalist LM
  .addLevel('universal', 'generalist-lm', (l, b) => lm(l.hidden, b), { weight: 0.3 })
  // child specialisation: the language level's (mean-pooled) state must identify its variety
  .addLevel('language', 'variety-ce', (l, b) => crossEntropy(model.probe.forward(l.hidden.mean(1)), b.labels), { weight: 0.1 })
  // bridge: a child refines its parent rather than replacing it
  .addBridge('domain', 'language', 'stay-close', (p, c) => c.hidden.sub(p.hidden.detach()).square().mean(), { weight: 0.01 });

console.log(
  `model: ${model.numParameters()} parameters; hierarchy levels ${config.levels.map((l) => `${l.name}[${l.experts.map((e) => e.name).join(',')}]`).join(' -> ')}`,
);
console.log(`loss terms: ${losses.keys().join(', ')} + expert/<level>/<expert>/delta`);

const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0.01 });
const fmt = (s: Record<string, number>): string =>
  Object.entries(s)
    .map(([k, v]) => `${k}=${v.toFixed(4)}`)
    .join('  ');

const trainStart = Date.now();
for (let step = 1; step <= STEPS; step++) {
  const b = batch('train', () => gen.uniform());
  const out = model.forward(b);
  const bundle = losses.compute(out, b);
  opt.zeroGrad();
  bundle.total.backward();
  clipGradNorm(model.parameters(), 1.0);
  opt.step();
  if (step === 1 || step % LOG_EVERY === 0) {
    const w = Array.from(out.fusionWeights!.dataSync(), (v) => v.toFixed(3)).join('/');
    console.log(`step ${String(step).padStart(3)}  fusion u/d/l=${w}\n  ${fmt(bundle.scalars)}`);
  }
}
console.log(`trained ${STEPS} steps in ${((Date.now() - trainStart) / 1000).toFixed(1)} s`);

// ---------------------------------------------------------------- evaluation
// Validation LM loss per variety with the right experts, and with every sample sent to the
// other domain's experts (a check that the routed experts matter).
model.eval();
const evalGen = new Generator(7);
const swap: Record<string, string> = {
  code: 'prose',
  prose: 'code',
  'ts-api': 'sotu-early',
  'ts-internal': 'sotu-modern',
  'sotu-early': 'ts-api',
  'sotu-modern': 'ts-internal',
};
const sums = varieties.map(() => ({ right: 0, wrong: 0 }));
const EVAL_BATCHES = 4;
noGrad(() => {
  for (let i = 0; i < EVAL_BATCHES; i++) {
    const b = batch('val', () => evalGen.uniform());
    const x = model.encode(b.ids);
    const right = model.hierarchy.forward(x, { routing: b.routing });
    const wrong = model.hierarchy.forward(x, {
      routing: { domain: b.routing.domain.map((n) => swap[n]!), language: b.routing.language.map((n) => swap[n]!) },
    });
    const ceRows = (o: HierarchyOutput) => crossEntropy(model.logits(o.fusedHidden), b.targets, { reduction: 'none' }).mean(1).dataSync();
    const r = ceRows(right);
    const w = ceRows(wrong);
    for (let s = 0; s < r.length; s++) {
      const v = Math.floor(s / PER_VARIETY);
      sums[v]!.right += r[s]! / (PER_VARIETY * EVAL_BATCHES);
      sums[v]!.wrong += w[s]! / (PER_VARIETY * EVAL_BATCHES);
    }
  }
});
console.log("validation next-token CE per variety (routed experts vs the other domain's experts):");
varieties.forEach((v, i) =>
  console.log(`  ${v.name.padEnd(12)} routed ${sums[i]!.right.toFixed(4)}   swapped ${sums[i]!.wrong.toFixed(4)}`),
);
