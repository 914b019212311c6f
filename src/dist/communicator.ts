// Communicators: rank, size, sub-groups and collectives on tensors (f32 / f64 / i32), over
// Open MPI ('mpi', native/dist/mpi.c) or one process alone ('single').
// Every collective has a Promise form (the blocking MPI call runs off the JS thread, so the
// event loop and progress bars stay alive) and a `Sync` form (blocks the JS thread) for
// autograd, whose backward is synchronous. A process keeps one MPI call in flight at a time.
import type { TypedArray } from '../backend/types.js';
import { shapeToString } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { arrayLike } from '../moe/tensors.js';
import { type MpiAddon, launchedByMpirun, openMpi } from './native-mpi.js';

export type CollectiveOp = 'sum' | 'avg' | 'max';
export type CommBackend = 'mpi' | 'single';
type Elements = Float32Array | Float64Array | Int32Array;
type Done = Promise<void> | undefined;

/** The transport under a Communicator: in-place / into-buffer collectives on flat arrays. */
interface Transport {
  allreduce(buf: Elements, op: 'sum' | 'max', async: boolean): Done;
  bcast(buf: Elements, root: number, async: boolean): Done;
  allgather(send: Elements, recv: Elements, async: boolean): Done;
  alltoall(send: Int32Array, recv: Int32Array, async: boolean): Done;
  alltoallv(send: Elements, sc: Int32Array, sd: Int32Array, recv: Elements, rc: Int32Array, rd: Int32Array, async: boolean): Done;
  barrier(async: boolean): Done;
  split(color: number, key: number): Promise<Transport & { rank: number; size: number }>;
}

// one MPI call in flight per process (MPI_THREAD_SERIALIZED)
let inFlight: Promise<unknown> = Promise.resolve();
let asyncPending = 0;

function serialized<T>(fn: () => Promise<T>): Promise<T> {
  asyncPending++;
  const p = inFlight.then(fn).finally(() => asyncPending--);
  inFlight = p.catch(() => undefined);
  return p;
}

function mpiTransport(addon: MpiAddon, comm: number): Transport {
  const opCode = { sum: 0, max: 1 } as const;
  return {
    allreduce: (buf, op, async) => addon.mpiAllreduce(comm, buf, opCode[op], async),
    bcast: (buf, root, async) => addon.mpiBcast(comm, buf, root, async),
    allgather: (send, recv, async) => addon.mpiAllgather(comm, send, recv, async),
    alltoall: (send, recv, async) => addon.mpiAlltoall(comm, send, recv, async),
    alltoallv: (send, sc, sd, recv, rc, rd, async) => addon.mpiAlltoallv(comm, send, sc, sd, recv, rc, rd, async),
    barrier: (async) => addon.mpiBarrier(comm, async),
    split: async (color, key) => {
      const id = await addon.mpiSplit(comm, color, key, true);
      return Object.assign(mpiTransport(addon, id), { rank: addon.mpiCommRank(id), size: addon.mpiCommSize(id) });
    },
  };
}

/** One process: every collective is a copy. */
const singleTransport: Transport = {
  allreduce: () => undefined,
  bcast: () => undefined,
  allgather: (send, recv) => void recv.set(send),
  alltoall: (send, recv) => void recv.set(send),
  alltoallv: (send, sc, sd, recv, _rc, rd) => void recv.set(send.subarray(sd[0]!, sd[0]! + sc[0]!), rd[0]!),
  barrier: () => undefined,
  split: async () => Object.assign(Object.create(singleTransport) as Transport, { rank: 0, size: 1 }),
};

/** Exclusive prefix sums of counts (MPI displacements). */
function displacements(counts: Int32Array): Int32Array {
  const d = new Int32Array(counts.length);
  for (let i = 1; i < counts.length; i++) d[i] = d[i - 1]! + counts[i - 1]!;
  return d;
}

function total(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
}

function like(t: Tensor, n: number): Elements {
  return t.dtype === 'f64' ? new Float64Array(n) : t.dtype === 'i32' ? new Int32Array(n) : new Float32Array(n);
}

export class Communicator {
  private constructor(
    readonly backend: CommBackend,
    readonly rank: number,
    readonly size: number,
    private readonly transport: Transport,
  ) {}

  /** @internal */
  static create(backend: CommBackend, rank: number, size: number, transport: Transport): Communicator {
    return new Communicator(backend, rank, size, transport);
  }

  /** A single-process communicator (size 1, no MPI). */
  static single(): Communicator {
    return new Communicator('single', 0, 1, singleTransport);
  }

  /** Sub-communicators: ranks with the same color form one, ordered by key (default: this rank). Collective. */
  async split(color: number, key = this.rank): Promise<Communicator> {
    const t = await serialized(() => this.transport.split(color, key));
    return new Communicator(this.backend, t.rank, t.size, t);
  }

  barrier(): Promise<void> {
    return serialized(async () => this.transport.barrier(true));
  }

  /** rank `root`'s tensor on every rank (same shape and dtype everywhere). */
  broadcast(t: Tensor, root = 0): Promise<Tensor> {
    return this.run((async) => this.broadcastImpl(t, root, async));
  }
  broadcastSync(t: Tensor, root = 0): Tensor {
    return this.runSync(() => this.broadcastImpl(t, root, false));
  }

  /** Elementwise sum / mean / max over the ranks (same shape everywhere). */
  allReduce(t: Tensor, op: CollectiveOp = 'sum'): Promise<Tensor> {
    return this.run((async) => this.allReduceImpl(t, op, async));
  }
  allReduceSync(t: Tensor, op: CollectiveOp = 'sum'): Tensor {
    return this.runSync(() => this.allReduceImpl(t, op, false));
  }

  /** Every rank's tensor stacked along axis 0, in rank order (same shape everywhere): [size·n, ...]. */
  allGather(t: Tensor): Promise<Tensor> {
    return this.run((async) => this.allGatherImpl(t, async));
  }
  allGatherSync(t: Tensor): Tensor {
    return this.runSync(() => this.allGatherImpl(t, false));
  }

  /** counts[r] goes to rank r; returns what each rank sent here (size ints each way). */
  allToAll(counts: Int32Array): Promise<Int32Array> {
    return this.run((async) => this.allToAllImpl(counts, async));
  }
  allToAllSync(counts: Int32Array): Int32Array {
    return this.runSync(() => this.allToAllImpl(counts, false));
  }

  /**
   * Rows of t (axis 0) in consecutive blocks: sendSplits[r] rows go to rank r; rank r's block
   * arrives as recvSplits[r] rows, in rank order. Without recvSplits the counts are exchanged first.
   */
  allToAllV(t: Tensor, sendSplits: ArrayLike<number>, recvSplits?: ArrayLike<number>): Promise<Tensor> {
    return this.run((async) => {
      const recv = recvSplits ? Int32Array.from(recvSplits) : this.allToAllImpl(Int32Array.from(sendSplits), false);
      return this.allToAllVImpl(t, sendSplits, recv, async);
    });
  }
  allToAllVSync(t: Tensor, sendSplits: ArrayLike<number>, recvSplits?: ArrayLike<number>): Tensor {
    return this.runSync(() => {
      const recv = recvSplits ? Int32Array.from(recvSplits) : this.allToAllImpl(Int32Array.from(sendSplits), false);
      return this.allToAllVImpl(t, sendSplits, recv, false);
    });
  }

  /** MPI_Abort on this communicator (ends every rank); in 'single' mode, exits. */
  abort(code = 1): never {
    if (this.backend === 'mpi') openMpi().addon.mpiAbort(0, code);
    process.exit(code);
  }

  private run<T>(body: (async: boolean) => T | Promise<T>): Promise<T> {
    return serialized(async () => body(true));
  }

  /** body runs its collective with async = false, so it returns no Promise. */
  private runSync<T>(body: () => T | Promise<T>): T {
    if (asyncPending > 0) throw new Error('communicator: a synchronous collective was called while an asynchronous one is in flight (await it first)');
    return body() as T;
  }

  private finish(done: Done, out: () => Tensor): Tensor | Promise<Tensor> {
    return done ? done.then(out) : out();
  }

  private broadcastImpl(t: Tensor, root: number, async: boolean): Tensor | Promise<Tensor> {
    if (!(Number.isInteger(root) && root >= 0 && root < this.size)) throw new RangeError(`broadcast: root ${root} is not a rank in [0, ${this.size})`);
    const buf = like(t, t.size);
    buf.set(t.dataSync() as Elements);
    return this.finish(this.transport.bcast(buf, root, async), () => arrayLike(t, buf, t.shape));
  }

  private allReduceImpl(t: Tensor, op: CollectiveOp, async: boolean): Tensor | Promise<Tensor> {
    if (op !== 'sum' && op !== 'avg' && op !== 'max') throw new RangeError(`allReduce: op '${String(op)}' is not one of 'sum', 'avg', 'max'`);
    if (op === 'avg' && t.dtype === 'i32') throw new TypeError("allReduce: op 'avg' needs a floating tensor (got i32); use 'sum'");
    const buf = like(t, t.size);
    buf.set(t.dataSync() as Elements);
    return this.finish(this.transport.allreduce(buf, op === 'max' ? 'max' : 'sum', async), () => {
      if (op === 'avg') for (let i = 0; i < buf.length; i++) buf[i]! /= this.size;
      return arrayLike(t, buf, t.shape);
    });
  }

  private allGatherImpl(t: Tensor, async: boolean): Tensor | Promise<Tensor> {
    if (t.ndim === 0) throw new RangeError('allGather: tensor must have at least one axis (rows are stacked along axis 0)');
    const recv = like(t, t.size * this.size);
    const send = like(t, t.size);
    send.set(t.dataSync() as Elements);
    const shape = [t.shape[0]! * this.size, ...t.shape.slice(1)];
    return this.finish(this.transport.allgather(send, recv, async), () => arrayLike(t, recv, shape));
  }

  private allToAllImpl(counts: Int32Array, async: false): Int32Array;
  private allToAllImpl(counts: Int32Array, async: boolean): Int32Array | Promise<Int32Array>;
  private allToAllImpl(counts: Int32Array, async: boolean): Int32Array | Promise<Int32Array> {
    if (counts.length !== this.size) throw new RangeError(`allToAll: counts must have one entry per rank (${this.size}), got ${counts.length}`);
    const recv = new Int32Array(this.size);
    const done = this.transport.alltoall(Int32Array.from(counts), recv, async);
    return done ? done.then(() => recv) : recv;
  }

  private allToAllVImpl(t: Tensor, sendSplits: ArrayLike<number>, recvSplits: Int32Array, async: boolean): Tensor | Promise<Tensor> {
    if (t.ndim === 0) throw new RangeError('allToAllV: tensor must have at least one axis (rows are split along axis 0)');
    const n = t.shape[0]!;
    if (sendSplits.length !== this.size || recvSplits.length !== this.size) {
      throw new RangeError(`allToAllV: sendSplits and recvSplits need one entry per rank (${this.size}), got ${sendSplits.length} and ${recvSplits.length}`);
    }
    if (total(sendSplits) !== n) throw new RangeError(`allToAllV: sendSplits sum to ${total(sendSplits)} but the tensor ${shapeToString(t.shape)} has ${n} rows`);
    const row = n > 0 ? t.size / n : t.shape.slice(1).reduce((p, d) => p * d, 1);
    const sc = Int32Array.from(sendSplits, (c) => c * row);
    const rc = recvSplits.map((c) => c * row);
    const recvRows = total(recvSplits);
    const recv = like(t, recvRows * row);
    const send = t.dataSync() as TypedArray as Elements;
    return this.finish(this.transport.alltoallv(send, sc, displacements(sc), recv, rc, displacements(rc), async), () => arrayLike(t, recv, [recvRows, ...t.shape.slice(1)]));
  }
}

let world: Communicator | null = null;

/**
 * The world communicator: 'mpi' (Open MPI; a one-line error naming what to install when it is
 * absent), 'single', or 'auto' (default: 'mpi' when started by mpirun, else 'single').
 * With 'mpi', an uncaught error on any rank aborts every rank (no hang), and MPI is finalized at exit.
 */
export function worldCommunicator(backend: CommBackend | 'auto' = 'auto'): Communicator {
  const want = backend === 'auto' ? (launchedByMpirun() ? 'mpi' : 'single') : backend;
  if (world && world.backend === want) return world;
  if (want === 'single') return (world = Communicator.single());
  const { addon, rank, size } = openMpi();
  world = Communicator.create('mpi', rank, size, mpiTransport(addon, 0));
  installAbortOnError(addon, rank);
  return world;
}

/** Any uncaught error or non-zero exit on one rank takes the whole job down with MPI_Abort. */
function installAbortOnError(addon: MpiAddon, rank: number): void {
  const die = (err: unknown): void => {
    const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`[rank ${rank}] ${msg}\n`);
    addon.mpiAbort(0, 1);
  };
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);
  process.on('exit', (code) => {
    if (code !== 0) addon.mpiAbort(0, code & 255 || 1);
    else addon.mpiFinalize();
  });
}
