// The routing recorder across ranks, under mpirun: every rank builds the single-process layer
// and, from the same seed, a layer with only its experts inside a round-robin EP block (and a
// TP block), attaches a RoutingRecorder to each, and runs the same three training forwards and
// backwards on one global batch. Each record of the blocks' recorders must equal the single
// process's: ids, counts and drops exactly, weights, entropies and imbalance to fp32 tolerance,
// and the selection bias. Each passing case prints "PASS <case> <block> rank <r>".
import { Generator } from '../../../src/tensor/random.js';
import { randn } from '../../../src/ops/creation.js';
import { mul } from '../../../src/ops/elementwise.js';
import { sum } from '../../../src/ops/reduce.js';
import type { Module } from '../../../src/nn/module.js';
import type { Tensor } from '../../../src/tensor/tensor.js';
import { parseMoEConfig } from '../../../src/moe/config.js';
import { MoELayer } from '../../../src/moe/layer.js';
import type { RoutingRecord } from '../../../src/moe/routing/record.js';
import { RoutingRecorder } from '../../../src/moe/routing/recorder.js';
import { worldCommunicator } from '../../../src/dist/communicator.js';
import { buildMoeBlock } from '../../../src/dist/builders.js';
import { expertShardFor } from '../../../src/dist/partition.js';

const comm = worldCommunicator();
const base = { hiddenSize: 16, experts: { intermediateSize: 24 }, losses: { lbWeight: 0.01 } };
const CASES: Record<string, object> = {
  'capacity-drops': { ...base, router: { numExperts: 8, topK: 2 }, dispatch: { capacityFactor: 0.75, capacityMultiple: 1 } },
  'sigmoid-selection-bias': { ...base, router: { numExperts: 8, topK: 3, scoreFunc: 'sigmoid', renormalize: 'sum', selectionBias: { gamma: 0.05 } } },
};

/** Three training steps' forwards and backwards of `model` on the same batches (13 tokens: uneven shards); the recorder's records. */
async function recordSteps(model: Module & { forward(x: Tensor): Tensor }, postBatch: () => void | Promise<void>): Promise<RoutingRecord[]> {
  const recorder = new RoutingRecorder(model).attach();
  const g = new Generator(11);
  model.train();
  for (let step = 0; step < 3; step++) {
    recorder.step = step;
    const x = randn([13, 16], { generator: g });
    sum(mul(model.forward(x), randn([13, 16], { generator: g }))).backward();
    await postBatch(); // the selection bias moves between steps
  }
  recorder.detach();
  return recorder.records();
}

function expectClose(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-5): void {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, the single process ${want.length} (rank ${comm.rank})`);
  for (let i = 0; i < want.length; i++)
    if (!(Math.abs(got[i]! - want[i]!) <= tol * Math.max(1, Math.abs(want[i]!)))) throw new Error(`${what}[${i}] = ${got[i]} but the single process records ${want[i]} (rank ${comm.rank})`);
}

for (const [name, cfg] of Object.entries(CASES)) {
  const single = new MoELayer(parseMoEConfig(cfg), { generator: new Generator(3) });
  const want = await recordSteps(single, () => single.postBatch());
  for (const kind of ['ep', 'tp'] as const) {
    const layer = new MoELayer(parseMoEConfig(cfg), { generator: new Generator(3), expertShard: expertShardFor(8, comm, kind) });
    const block = buildMoeBlock(kind, layer, { group: comm });
    // the block's postBatch: EP all-reduces the counts the bias update reads
    const got = await recordSteps(block, () => block.postBatch());
    if (got.length !== want.length) throw new Error(`${name} ${kind}: ${got.length} records, the single process ${want.length}`);
    got.forEach((r, i) => {
      const w = want[i]!;
      const at = `${name} ${kind} record ${i}`;
      for (const f of ['call', 'step', 'numTokens', 'topK', 'numExperts', 'tokensKept', 'droppedSlots', 'deadExperts'] as const)
        if (r[f] !== w[f]) throw new Error(`${at}: ${f} ${r[f]}, the single process ${w[f]} (rank ${comm.rank})`);
      if (r.ids.join() !== w.ids.join()) throw new Error(`${at}: ids differ from the single process's (rank ${comm.rank})`);
      if (r.counts.join() !== w.counts.join()) throw new Error(`${at}: counts ${r.counts.join()}, the single process ${w.counts.join()} (rank ${comm.rank})`);
      expectClose(`${at} weights`, r.weights, w.weights);
      expectClose(`${at} entropies and imbalance`, [r.routerEntropy, r.usageEntropy, r.loadImbalance], [w.routerEntropy, w.usageEntropy, w.loadImbalance]);
      expectClose(`${at} bias`, r.bias ?? [], w.bias ?? []);
    });
    if (name === 'capacity-drops' && !want.some((r) => r.droppedSlots > 0)) throw new Error(`${name}: no slot was dropped; the case does not test drops`);
    console.log(`PASS ${name} ${kind} rank ${comm.rank}`);
  }
}
console.log(`DONE rank ${comm.rank}`);
