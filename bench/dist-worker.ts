// Runs under mpirun for `npm run bench -- dist`: allToAllV latency / bandwidth by message size,
// and the EP MoE layer's fwd+bwd step with its time split into compute and communication.
// Rank 0 prints one JSON object per line ("BENCH {...}").
import { Generator } from '../src/tensor/random.js';
import { fromArray, randn } from '../src/ops/creation.js';
import { mul } from '../src/ops/elementwise.js';
import { sum } from '../src/ops/reduce.js';
import { parseMoEConfig } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { type Communicator, worldCommunicator } from '../src/dist/communicator.js';
import { ExpertParallelMoeBlock } from '../src/dist/ep-block.js';
import { allReduceGradients } from '../src/dist/differentiable.js';
import { median } from './util.js';

const comm = worldCommunicator();
const report = (o: object) => comm.rank === 0 && console.log(`BENCH ${JSON.stringify({ np: comm.size, ...o })}`);

/** Seconds per call of a collective, the median over ranks' max (every rank times the same calls). */
function timeCollective(fn: () => void, reps: number): number {
  fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    comm.allReduceSync(fromArray(Float64Array.of(0), [1]), 'sum'); // line the ranks up
    const t0 = performance.now();
    fn();
    ts.push((performance.now() - t0) / 1000);
  }
  return comm.allReduceSync(fromArray(Float64Array.of(median(ts)), [1]), 'max').item();
}

// allToAllV: `bytes` to every rank (itself included), f32 rows of 256 floats
for (const bytes of [1 << 10, 1 << 14, 1 << 17, 1 << 20, 1 << 22, 1 << 24]) {
  const rowsPerPeer = Math.max(1, bytes / 1024);
  const x = fromArray(new Float32Array(rowsPerPeer * comm.size * 256), [rowsPerPeer * comm.size, 256]);
  const splits = Array.from({ length: comm.size }, () => rowsPerPeer);
  const t = timeCollective(() => comm.allToAllVSync(x, splits, splits), bytes >= 1 << 22 ? 5 : 20);
  // the same bytes copied in memory once: the peer the transfer is measured against
  const src = x.dataSync() as Float32Array;
  const copy = new Float32Array(src.length);
  const tc = median(
    Array.from({ length: 5 }, () => {
      const t0 = performance.now();
      copy.set(src);
      return (performance.now() - t0) / 1000;
    }),
  );
  const remote = bytes * (comm.size - 1);
  report({ bench: 'allToAllV', bytesPerPeer: bytes, seconds: t, remoteBytesPerSec: comm.size > 1 ? remote / t : null, copyRatio: t / tc });
}

// EP MoE layer fwd+bwd, OLMo-core style: each rank routes its own T tokens
function instrument(c: Communicator): { comm: number; reset(): void } {
  const acc = {
    comm: 0,
    reset() {
      this.comm = 0;
    },
  };
  for (const name of ['allToAllVSync', 'allToAllSync', 'allReduceSync'] as const) {
    const orig = c[name].bind(c) as (...a: unknown[]) => unknown;
    (c as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => {
      const t0 = performance.now();
      try {
        return orig(...a);
      } finally {
        acc.comm += (performance.now() - t0) / 1000;
      }
    };
  }
  return acc;
}

const T = 1024;
const H = 256;
const layer = new MoELayer(parseMoEConfig({ hiddenSize: H, router: { numExperts: 8, topK: 2 }, experts: { intermediateSize: 512 } }), {
  generator: new Generator(1),
});
layer.train();
const g = new Generator(2 + comm.rank);
const x = randn([T, H], { generator: g }).requiresGrad_();
const seed = randn([T, H], { generator: g });
const step = (f: (x: typeof seed) => typeof seed) => {
  x.zeroGrad();
  for (const p of layer.parameters()) p.zeroGrad();
  sum(mul(f(x), seed)).backward();
};
// the single-process MoELayer on this rank's tokens: the peer
const single = median(
  Array.from({ length: 8 }, () => {
    const t0 = performance.now();
    step((v) => layer.forward(v));
    return (performance.now() - t0) / 1000;
  }).slice(2),
);
const block = new ExpertParallelMoeBlock(layer, comm, { sharding: 'local' });
block.train();
const counter = instrument(comm);
const runs: { total: number; comm: number }[] = [];
for (let i = 0; i < 10; i++) {
  comm.allReduceSync(fromArray(Float64Array.of(0), [1]), 'sum');
  counter.reset();
  const t0 = performance.now();
  step((v) => block.forward(v));
  allReduceGradients(comm, block.replicatedParameters(), 'avg');
  const total = (performance.now() - t0) / 1000;
  if (i >= 2) runs.push({ total, comm: counter.comm });
}
const total = median(runs.map((r) => r.total));
const commSec = median(runs.map((r) => r.comm));
const worst = comm.allReduceSync(fromArray(Float64Array.of(total, commSec), [2]), 'max').dataSync();
report({
  bench: 'epLayer',
  tokensPerRank: T,
  hidden: H,
  experts: 8,
  topK: 2,
  intermediate: 512,
  stepSeconds: worst[0],
  commSeconds: worst[1],
  computeSeconds: worst[0]! - worst[1]!,
  tokensPerSec: (T * comm.size) / worst[0]!,
  singleLayerStepSeconds: single,
});
