// Runs under mpirun (or alone): every rank builds the same MoELayer and tokens from one seed,
// computes the single-process reference (outputs, gradients, expert counts, drops), then runs
// the TP and EP blocks and checks they agree (a CT-MoE topology included). The blocks run over
// a layer built from the same seed with only this rank's experts (expertShard), so agreement
// also shows that the ranks' experts together are the whole layer's; 'softmax-top2' runs them
// over the whole layer instead (the block copies its slice). Any mismatch throws, which aborts
// every rank (MPI_Abort); each passing case prints "PASS <case> <block> rank <r>".
// The blocks run the layer under its 'parallel' execution plan; `--backend=reference` runs every
// rank on the reference backend, where that plan's local experts are the composition (on the
// native backend: the kernels' experts node), and each case checks the plan says so.
import { Generator } from '../../../src/tensor/random.js';
import type { Tensor } from '../../../src/tensor/tensor.js';
import { fromArray, randn } from '../../../src/ops/creation.js';
import { mul } from '../../../src/ops/elementwise.js';
import { sum } from '../../../src/ops/reduce.js';
import { parseMoEConfig } from '../../../src/moe/config.js';
import { MoELayer } from '../../../src/moe/layer.js';
import { ctMoePreset } from '../../../src/moe/topology/preset.js';
import { Module, type Parameter } from '../../../src/nn/module.js';
import { worldCommunicator } from '../../../src/dist/communicator.js';
import { allReduceGradients } from '../../../src/dist/differentiable.js';
import { buildMlpOrMoe, buildMoeBlock } from '../../../src/dist/builders.js';
import { ExpertParallelMoeBlock } from '../../../src/dist/ep-block.js';
import { expertShardFor } from '../../../src/dist/partition.js';
import { getBackend, setBackend } from '../../../src/backend/registry.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--backend='));
if (process.argv.includes('--backend=reference')) setBackend('reference');
const comm = worldCommunicator();
const base = { hiddenSize: 16, experts: { intermediateSize: 24 }, losses: { lbWeight: 0.01, zLossWeight: 0.001 } };
const CASES: Record<string, { cfg: object; T: number; setup?: (l: MoELayer) => void; expectDrops?: boolean; zeroExpert?: number; wholeLayer?: boolean }> = {
  'softmax-top2': { cfg: { ...base, router: { numExperts: 8, topK: 2 } }, T: 13, wholeLayer: true },
  'sigmoid-group-limited-bias': {
    cfg: { ...base, router: { numExperts: 8, topK: 3, scoreFunc: 'sigmoid', renormalize: 'sum', scalingFactor: 2.5, groupLimit: { numGroups: 4, topkGroups: 2 }, selectionBias: { gamma: 0.01 } } },
    T: 11,
    setup: (l) => l.selectionBias!.load(Array.from({ length: 8 }, (_, e) => 0.05 * ((e * 5) % 8) - 0.2)),
  },
  'capacity-drops': { cfg: { ...base, router: { numExperts: 8, topK: 2 }, dispatch: { capacityFactor: 0.5, capacityMultiple: 1 } }, T: 16, expectDrops: true },
  'shared-experts': { cfg: { ...base, router: { numExperts: 8, topK: 2 }, shared: { intermediateSize: 20, gate: 'sigmoid', mix: 'olmo' } }, T: 9 },
  // CT-MoE (k = 3 so S reaches the message passing): S's routing bias and the folded message
  // passing on the token's rank, S_raw's gradient summed over the ranks
  'ct-moe-topology': {
    cfg: ctMoePreset(16, 8, 3, { routingScale: 1.3, collabScale: 0.8, lbWeight: 0.01 }),
    T: 13,
    setup: (l) => {
      const g = new Generator(5);
      (l.topology!.sRaw.dataSync() as Float32Array).set(Array.from({ length: 64 }, () => 3 * g.uniform() - 1.5));
      (l.routerWeight.dataSync() as Float32Array).set(Array.from({ length: 128 }, () => g.uniform() - 0.5));
    },
  },
  'one-token': { cfg: { ...base, router: { numExperts: 8, topK: 2 } }, T: 1 },
  'expert-without-tokens': {
    cfg: { ...base, router: { numExperts: 8, topK: 2, routerBias: true } },
    T: 10,
    setup: (l) => l.routerBias!.storage.fill(-50, 7, 8) && l.routerBias!.storage.fill(0, 0, 7),
    zeroExpert: 7,
  },
};

function snapshot(ts: readonly (Tensor | null)[]): Float64Array[] {
  return ts.map((t) => Float64Array.from((t ?? { dataSync: () => [] as number[] }).dataSync()));
}

function expectClose(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = 2e-4): void {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, expected ${want.length}`);
  let scale = 1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= tol * scale)) throw new Error(`${what}[${i}] = ${got[i]} but the single process gives ${want[i]} (rank ${comm.rank})`);
  }
}

function zeroGrads(params: readonly Parameter[], x: Tensor): void {
  for (const p of params) p.zeroGrad();
  x.zeroGrad();
}

if (args[0] === 'indivisible') {
  // 7 experts over 2 or 4 ranks: both blocks refuse with one line naming the sizes
  const layer = new MoELayer(parseMoEConfig({ ...base, router: { numExperts: 7, topK: 2 } }), { generator: new Generator(7) });
  for (const kind of ['tp', 'ep'] as const) {
    try {
      buildMoeBlock(kind, layer, { group: comm });
    } catch (err) {
      const want = `${kind} MoE block: numExperts 7 is not divisible by the ${kind.toUpperCase()} group size ${comm.size}; choose a group size that divides the experts`;
      if ((err as Error).message !== want) throw err;
      console.log(`PASS indivisible ${kind} rank ${comm.rank}`);
      continue;
    }
    throw new Error(`${kind}: 7 experts over ${comm.size} ranks did not throw`);
  }
  // Diffulex's builder hands the layer factory this rank's experts
  const built = buildMlpOrMoe({ num_experts: 8 }, 0, () => new Module(), (expertShard) => new MoELayer(parseMoEConfig({ ...base, router: { numExperts: 8, topK: 2 } }), { expertShard }), { ep: comm });
  if (!(built instanceof ExpertParallelMoeBlock) || built.experts.numExperts !== 8 / comm.size || built.layer.expertShard?.first !== (8 / comm.size) * comm.rank)
    throw new Error('buildMlpOrMoe under EP did not build a layer holding only this rank\'s experts');
  console.log(`PASS buildMlpOrMoe ep rank ${comm.rank}`);
  const jittered = new MoELayer(parseMoEConfig({ ...base, router: { numExperts: 8, topK: 2, jitterEps: 0.01 } }));
  try {
    buildMoeBlock('tp', jittered, { group: comm });
    throw new Error('a tp block over a jittered router did not throw');
  } catch (err) {
    if (!/^tp MoE block: router.jitterEps > 0 would give each rank different routing/.test((err as Error).message)) throw err;
    console.log(`PASS jitter tp rank ${comm.rank}`);
  }
}
const only = args[0] === 'indivisible' ? [] : args[0] ? args[0].split(',') : Object.keys(CASES);
// which path the plan gives the rank's experts on this backend (the experts node where the kernels are fast)
const expertsPath = getBackend().moe?.fast ? /; local experts: one \S+ kernel node on the native backend, f32/ : /; local experts: composition \(/;
for (const name of only) {
  const c = CASES[name]!;
  const layer = new MoELayer(parseMoEConfig(c.cfg), { generator: new Generator(7) });
  c.setup?.(layer);
  layer.train();
  const g = new Generator(11);
  const x = randn([c.T, 16], { generator: g }).requiresGrad_();
  const seed = randn([c.T, 16], { generator: g });
  const params = layer.parameters();
  // the single-process reference
  const yRef = layer.forward(x);
  sum(mul(yRef, seed)).backward();
  const ref = { y: Float64Array.from(yRef.dataSync()), dx: Float64Array.from(x.grad!.dataSync()), grads: snapshot(params.map((p) => p.grad)), counts: layer.lastMetrics!.tokensPerExpert, dropped: Math.round(layer.lastMetrics!.droppedFraction * c.T * layer.cfg.router.topK) };
  if (c.expectDrops && ref.dropped === 0) throw new Error(`${name}: the reference dropped no slots; the case does not test drops`);
  if (c.zeroExpert !== undefined && ref.counts[c.zeroExpert] !== 0) throw new Error(`${name}: expert ${c.zeroExpert} got tokens in the reference`);
  zeroGrads(params, x);
  layer.selectionBias?.pendingCounts.fill(0); // forget the reference's counts without moving the bias

  for (const kind of ['tp', 'ep'] as const) {
    let blockLayer = layer;
    if (!c.wholeLayer) {
      blockLayer = new MoELayer(parseMoEConfig(c.cfg), { generator: new Generator(7), expertShard: expertShardFor(8, comm, kind) });
      c.setup?.(blockLayer);
      if (blockLayer.experts.numExperts !== 8 / comm.size) throw new Error(`${name} ${kind}: the sharded layer holds ${blockLayer.experts.numExperts} experts`);
    }
    const block = buildMoeBlock(kind, blockLayer, { group: comm });
    if (!c.wholeLayer && block.experts !== blockLayer.experts) throw new Error(`${name} ${kind}: the block does not run the sharded layer's own bank`);
    block.train();
    const plan = blockLayer.executionPlan;
    const parallel = kind === 'tp' && comm.size === 1 ? null : `${kind === 'ep' ? 'expert' : 'tensor'} parallel over ${comm.size} rank`;
    if (parallel ? !(plan.path === 'parallel' && plan.summary.startsWith(parallel) && expertsPath.test(plan.summary)) : plan.path === 'parallel')
      throw new Error(`${name} ${kind}: the layer's plan is '${plan.path}': ${plan.summary}`);
    const y = block.forward(x);
    sum(mul(y, seed)).backward();
    if (block instanceof ExpertParallelMoeBlock) {
      allReduceGradients(comm, block.replicatedParameters(), 'sum');
      const dropped = (await comm.allReduce(fromArray(Float64Array.of(block.lastDroppedSlots), [1]), 'sum')).item();
      if (dropped !== ref.dropped) throw new Error(`${name} ep: ${dropped} slots dropped across ranks, the single process drops ${ref.dropped}`);
    }
    expectClose(`${name} ${kind} output`, y.dataSync(), ref.y);
    expectClose(`${name} ${kind} input gradient`, x.grad!.dataSync(), ref.dx);
    // routing: the counts the block's router produced (summed over the ranks' shards for EP) match exactly
    const pending = blockLayer.selectionBias?.pendingCounts;
    if (pending) {
      const counts = kind === 'ep' ? (await comm.allReduce(fromArray(Float64Array.from(pending), [8]), 'sum')).dataSync() : pending;
      for (let e = 0; e < 8; e++) if (counts[e] !== ref.counts[e]) throw new Error(`${name} ${kind}: expert ${e} got ${counts[e]} slots, the single process ${ref.counts[e]}`);
    }
    const named = new Map(blockLayer.namedParameters());
    const names = layer.namedParameters().map(([n]) => n);
    const E = 8;
    for (const [i, n] of names.entries()) {
      const want = ref.grads[i]!;
      if (n.startsWith('experts.')) {
        const local = block.experts.namedParameters().find(([m]) => `experts.${m}` === n)![1];
        const El = block.experts.numExperts;
        const per = want.length / E;
        expectClose(`${name} ${kind} grad ${n}`, local.grad!.dataSync(), want.subarray(block.firstExpert * per, (block.firstExpert + El) * per));
      } else {
        expectClose(`${name} ${kind} grad ${n}`, named.get(n)!.grad!.dataSync(), want);
      }
    }
    zeroGrads(blockLayer.parameters(), x);
    for (const p of block.experts.parameters()) p.zeroGrad();
    blockLayer.selectionBias?.pendingCounts.fill(0);
    console.log(`PASS ${name} ${kind} rank ${comm.rank}`);
  }
}
console.log(`DONE rank ${comm.rank}`);
