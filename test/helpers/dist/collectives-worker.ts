// Runs under mpirun: checks every collective against its closed form on this rank's values
// (rank r contributes values built from r), prints "PASS <what> rank <r>", throws on a mismatch.
// Mode 'throw': rank size-1 throws while the others wait in a collective (they must all die).
// Mode 'bad-ids': rank size-1 dispatches an expert id out of range.
import type { Tensor } from '../../../src/tensor/tensor.js';
import { fromArray } from '../../../src/ops/creation.js';
import { sum } from '../../../src/ops/reduce.js';
import { mul } from '../../../src/ops/elementwise.js';
import { worldCommunicator } from '../../../src/dist/communicator.js';
import { allToAllV } from '../../../src/dist/differentiable.js';
import { NaiveAllToAllDispatcher } from '../../../src/dist/naive-dispatcher.js';

const comm = worldCommunicator();
const { rank, size } = comm;
const mode = process.argv[2] ?? 'all';

function expectEqual(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  const a = Array.from(got);
  const b = Array.from(want);
  if (a.length !== b.length || a.some((v, i) => Math.abs(v - b[i]!) > 1e-6 * Math.max(1, Math.abs(b[i]!)))) {
    throw new Error(`${what} on rank ${rank}: got [${a.join(', ')}], expected [${b.join(', ')}]`);
  }
  console.log(`PASS ${what} rank ${rank}`);
}

const range = <T,>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
const ranks = range(size, (r) => r);

if (mode === 'throw') {
  if (rank === size - 1) throw new Error('deliberate failure on the last rank');
  await comm.barrier();
  console.log(`UNREACHABLE rank ${rank}`);
} else if (mode === 'bad-ids') {
  const d = new NaiveAllToAllDispatcher(comm, size, 2, 1);
  const bad = rank === size - 1 ? 2 * size + 3 : 0;
  d.dispatch(fromArray(new Float32Array(4), [1, 4]), fromArray(Int32Array.of(bad), [1, 1]), fromArray(Float32Array.of(1), [1, 1]));
  console.log(`UNREACHABLE rank ${rank}`);
} else {
  for (const dtype of ['f32', 'f64', 'i32'] as const) {
    const make = (v: number[], shape = [v.length]) => fromArray(dtype === 'f32' ? Float32Array.from(v) : dtype === 'f64' ? Float64Array.from(v) : Int32Array.from(v), shape);
    const mine = make([rank + 1, 10 * rank - 3, 7]);
    expectEqual(`allReduce sum ${dtype}`, (await comm.allReduce(mine, 'sum')).dataSync(), [size * (size + 1) / 2, ranks.reduce((p, r) => p + 10 * r - 3, 0), 7 * size]);
    expectEqual(`allReduce max ${dtype} sync`, comm.allReduceSync(mine, 'max').dataSync(), [size, 10 * (size - 1) - 3, 7]);
    if (dtype !== 'i32') expectEqual(`allReduce avg ${dtype}`, (await comm.allReduce(mine, 'avg')).dataSync(), [(size + 1) / 2, ranks.reduce((p, r) => p + 10 * r - 3, 0) / size, 7]);
    expectEqual(`broadcast ${dtype}`, (await comm.broadcast(make([rank, rank * 2]), size - 1)).dataSync(), [size - 1, 2 * (size - 1)]);
    const gathered = await comm.allGather(make([rank, -rank], [1, 2]));
    expectEqual(`allGather ${dtype} shape`, gathered.shape, [size, 2]);
    expectEqual(`allGather ${dtype}`, gathered.dataSync(), ranks.flatMap((r) => [r, -r]));
    // rank r sends (r + d) % 3 rows to rank d, row j of that block = [100r + 10d + j, r]
    const splits = ranks.map((d) => (rank + d) % 3);
    const rows = ranks.flatMap((d) => range(splits[d]!, (j) => [100 * rank + 10 * d + j, rank]));
    const sent = make(rows.flat(), [rows.length, 2]);
    const recv = await comm.allToAllV(sent, splits);
    const want = ranks.flatMap((src) => range((src + rank) % 3, (j) => [100 * src + 10 * rank + j, src]));
    expectEqual(`allToAllV ${dtype} rows`, [recv.shape[0]!], [want.length]);
    expectEqual(`allToAllV ${dtype}`, recv.dataSync(), want.flat());
    expectEqual(`allToAllV ${dtype} sync with recvSplits`, comm.allToAllVSync(sent, splits, ranks.map((s) => (s + rank) % 3)).dataSync(), want.flat());
  }
  expectEqual('allToAll counts', await comm.allToAll(Int32Array.from(ranks, (d) => 10 * rank + d)), ranks.map((s) => 10 * s + rank));
  // sub-communicators: EP groups of consecutive pairs, DP groups of the same position in each pair
  const ep = await comm.split(Math.floor(rank / 2));
  const dp = await comm.split(rank % 2);
  expectEqual('split ep rank/size', [ep.rank, ep.size], [rank % 2, Math.min(2, size - 2 * Math.floor(rank / 2))]);
  expectEqual('split dp rank/size', [dp.rank, dp.size], [Math.floor(rank / 2), ranks.filter((r) => r % 2 === rank % 2).length]);
  expectEqual('allReduce over ep group', (await ep.allReduce(fromArray(Float32Array.of(rank), [1]))).dataSync(), [ranks.filter((r) => Math.floor(r / 2) === Math.floor(rank / 2)).reduce((p, r) => p + r, 0)]);
  // differentiable allToAllV: d/dx sum(allToAllV(x) * c) is c sent back along the reverse route
  const splits = ranks.map((d) => (rank + 2 * d) % 3);
  const n = splits.reduce((p, v) => p + v, 0);
  const x = fromArray(Float32Array.from(range(n, (i) => i + rank)), [n, 1]).requiresGrad_();
  const recvSplits = ranks.map((s) => (s + 2 * rank) % 3);
  const y = allToAllV(comm, x, splits, recvSplits);
  // coefficient of each received row: 1000·(source rank) + position in its block
  const coef = ranks.flatMap((s) => range(recvSplits[s]!, (j) => 1000 * s + j));
  sum(mul(y, fromArray(Float32Array.from(coef), [coef.length, 1]))).backward();
  // the row x sent to rank d at position j gets coefficient 1000·rank + j
  expectEqual('allToAllV gradient', (x.grad as Tensor).dataSync(), ranks.flatMap((d) => range(splits[d]!, (j) => 1000 * rank + j)));
  // Diffulex's inactive rank: rank 0 dispatches nothing (activeDispatch false) yet joins every
  // collective, computes what the others send it, and gets zeros from combine. One expert per
  // rank, top-1; token j of rank r (row [10r + j, 1]) goes to expert (r + j + 1) mod size.
  const d = new NaiveAllToAllDispatcher(comm, size, 1, 1);
  const T = 3;
  const hidden = fromArray(Float32Array.from(range(T, (j) => [10 * rank + j, 1]).flat()), [T, 2]);
  const ids = fromArray(Int32Array.from(range(T, (j) => (rank + j + 1) % size)), [T, 1]);
  const out = d.dispatch(hidden, ids, fromArray(Float32Array.from(range(T, () => 1)), [T, 1]), rank !== 0);
  const fromActive = ranks.filter((s) => s !== 0).flatMap((s) => range(T, (j) => j).filter((j) => (s + j + 1) % size === rank).map((j) => [10 * s + j, 1]));
  expectEqual('inactive rank: received rows', out.recvHiddenStates.dataSync(), fromActive.flat());
  const combined = d.combine(mul(out.recvHiddenStates, fromArray(Float32Array.of(2), [1])), out.metadata);
  expectEqual('inactive rank: combine', combined.dataSync(), rank === 0 ? new Array(2 * T).fill(0) : range(T, (j) => [2 * (10 * rank + j), 2]).flat());
  await comm.barrier();
  console.log(`DONE rank ${rank}`);
}
