// The training side of `moekit dashboard`: appends <variant dir>/log.jsonl (format:
// src/dashboard/log-format.ts) while a variant trains. Reads the model, never changes it: the
// routing sample runs in eval mode under no grad (no dropout draws, no usage counting).
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpeTokenizer } from '../../data/tokenizer.js';
import { LOG_JSONL, type LogLine } from '../../dashboard/log-format.js';
import { noGrad } from '../../tensor/autograd.js';
import { fromArray } from '../../ops/creation.js';
import type { CtMoeExperimentConfig, VariantSpec } from './config.js';
import type { CtMoeData } from './data.js';
import { finalSReads } from './eval.js';
import { type Reads, read } from '../../tensor/reads.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { CtMoeGPT } from './model.js';
import type { CtMoeLogEntry } from './train.js';

/** Tokens per domain in the routing sample (the token view). */
const SAMPLE_TOKENS = 48;

export class DashboardLog {
  private readonly file: string;
  private readonly sample: Int32Array[];
  /** Each layer's usage counters after the previous step (they reset at every log point). */
  private prevUsage: Float64Array[];

  constructor(
    dir: string,
    private readonly cfg: CtMoeExperimentConfig,
    variant: VariantSpec,
    data: CtMoeData,
    private readonly model: CtMoeGPT,
    step: number,
    steps: number,
    /** false: an expert-parallel rank other than the writer, which runs the sample's (collective) forwards with it and writes nothing. */
    private readonly writes = true,
  ) {
    this.file = join(dir, LOG_JSONL);
    const n = Math.min(SAMPLE_TOKENS, cfg.seqLen);
    this.sample = [data.val.code, data.val.prose].filter((t) => t.length >= n).map((t) => t.slice(0, n));
    this.prevUsage = model.moeLayers.map((l) => Float64Array.from(l.usage));
    const tok = BpeTokenizer.gpt2(cfg.vocabSize);
    this.append({
      kind: 'start',
      variant: variant.key,
      label: variant.label,
      color: variant.color,
      step,
      steps,
      numLayers: cfg.nLayer,
      numExperts: cfg.numExperts,
      topK: cfg.topK,
      tokens: this.sample.flatMap((row) => Array.from(row, (id) => tok.decode([id]))),
    });
  }

  /** After each optimiser step, before its log point (if any) resets the usage counters. */
  afterStep(step: number, loss: number, ce: number): void {
    const resetBefore = step > 1 && (step - 1) % this.cfg.logEvery === 0;
    const load = this.model.moeLayers.map((l, i) => {
      const prev = this.prevUsage[i]!;
      const d = Array.from(l.usage, (u, e) => u - (resetBefore ? 0 : prev[e]!));
      this.prevUsage[i] = Float64Array.from(l.usage);
      return d;
    });
    this.append({ kind: 'step', step, loss, ce, load });
  }

  /** At each log point: the trainer's entry, S per layer and the routing of the sample. */
  *afterLog(entry: CtMoeLogEntry): Reads<void> {
    const s = yield* finalSReads(this.model);
    this.append({ kind: 'log', step: entry.step, entry, s, routing: yield* this.routeSample() });
  }

  private *routeSample(): Reads<{ ids: number[][][]; weights: number[][][] }> {
    const layers = this.model.moeLayers;
    const ids: number[][][] = layers.map(() => []);
    const weights: number[][][] = layers.map(() => []);
    const was = this.model.training;
    this.model.eval();
    // each layer's routing, seen through a routing hook of our own while the sample runs (a
    // recorder the user set is put back afterwards: the sample is not training data to record),
    // read after the forwards in one wait
    const traces: { layer: number; ids: Tensor; weights: Tensor }[] = [];
    const before = layers.map((l) => l.routingHook);
    layers.forEach((l, i) => {
      l.routingHook = { observe: (_, { routing }) => traces.push({ layer: i, ids: routing.topkIds, weights: routing.topkWeights }) };
    });
    try {
      noGrad(() => {
        for (const row of this.sample) this.model.gpt.hidden(fromArray(row, [1, row.length]));
      });
    } finally {
      layers.forEach((l, i) => (l.routingHook = before[i]!));
      this.model.train(was);
    }
    const values = yield* read(...traces.flatMap((t) => [t.ids, t.weights]));
    const k = this.cfg.topK;
    traces.forEach(({ layer }, n) => {
      const id = values[2 * n]!;
      const w = values[2 * n + 1]!;
      for (let t = 0; t < id.length / k; t++) {
        ids[layer]!.push(Array.from(id.subarray(t * k, (t + 1) * k)));
        weights[layer]!.push(Array.from(w.subarray(t * k, (t + 1) * k)));
      }
    });
    return { ids, weights };
  }

  private append(line: LogLine): void {
    if (!this.writes) return;
    // one line per write: a reader sees whole lines or a partial last one it waits on
    appendFileSync(this.file, `${JSON.stringify(line)}\n`);
  }
}
