// The MPI functions of the native addon (native/dist/mpi.c) and opening MPI (Open MPI, or an
// MPICH-ABI library: MPICH, Intel MPI, MVAPICH) at first use.
import { loadNativeAddon } from '../backend/native/addon.js';
import { readEnv } from '../env.js';

type Elements = Float32Array | Float64Array | Int32Array;

/** native/dist/mpi.c's exports; `async` true returns a Promise (the call runs on a libuv worker). */
export interface MpiAddon {
  /** null when the library loads (without initialising MPI), else why not. */
  mpiProbe(lib: string): string | null;
  mpiOpen(lib: string): { rank: number; size: number; thread: number };
  mpiCommRank(comm: number): number;
  mpiCommSize(comm: number): number;
  mpiSplit(comm: number, color: number, key: number, async: false): number;
  mpiSplit(comm: number, color: number, key: number, async: true): Promise<number>;
  mpiBarrier(comm: number, async: boolean): Promise<void> | undefined;
  mpiBcast(comm: number, buf: Elements, root: number, async: boolean): Promise<void> | undefined;
  /** In place; op 0 sum, 1 max, 2 min. */
  mpiAllreduce(comm: number, buf: Elements, op: number, async: boolean): Promise<void> | undefined;
  mpiAllgather(comm: number, send: Elements, recv: Elements, async: boolean): Promise<void> | undefined;
  mpiAlltoall(comm: number, send: Elements, recv: Elements, async: boolean): Promise<void> | undefined;
  mpiAlltoallv(
    comm: number,
    send: Elements,
    sendCounts: Int32Array,
    sendDispls: Int32Array,
    recv: Elements,
    recvCounts: Int32Array,
    recvDispls: Int32Array,
    async: boolean,
  ): Promise<void> | undefined;
  mpiAbort(comm: number, code: number): void;
  mpiFinalize(): void;
}

export const INSTALL_HINT =
  'install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi3) or MPICH (apt-get install mpich libmpich12) and start the ranks with its mpirun / mpiexec';

const OPEN_MPI = ['libmpi.so.40'];
const MPICH_ABI = ['libmpich.so.12', 'libmpi.so.12']; // MPICH's Debian name; the MPICH ABI's (Intel MPI, MVAPICH)

/** Which launcher started this process: Open MPI's mpirun, an MPICH-family mpiexec (Hydra's PMI), or none. */
export function mpiLauncher(): 'openmpi' | 'mpich' | null {
  if (process.env.OMPI_COMM_WORLD_SIZE !== undefined) return 'openmpi';
  if (process.env.PMI_RANK !== undefined || process.env.PMI_SIZE !== undefined) return 'mpich';
  if (process.env.PMIX_RANK !== undefined) return 'openmpi';
  return null;
}

/**
 * The library to dlopen: MOEKIT_MPI_LIB when set (a path or another soname), else the first
 * that loads of the launcher's family (Open MPI's soname, then MPICH's; the other order under
 * an MPICH launcher), so both may be installed side by side.
 */
export function mpiLibraryName(): string {
  const chosen = readEnv('MOEKIT_MPI_LIB') as string | undefined;
  if (chosen) return chosen;
  const order = mpiLauncher() === 'mpich' ? [...MPICH_ABI, ...OPEN_MPI] : [...OPEN_MPI, ...MPICH_ABI];
  const addon = loadNativeAddon().addon as unknown as Partial<MpiAddon> | null;
  if (!addon || typeof addon.mpiProbe !== 'function') return order[0]!;
  return order.find((lib) => addon.mpiProbe!(lib) === null) ?? order[0]!;
}

let opened: { addon: MpiAddon; rank: number; size: number } | null = null;

/** dlopen Open MPI and MPI_Init_thread once; a one-line Error naming what to install when it is absent. */
export function openMpi(): { addon: MpiAddon; rank: number; size: number } {
  if (opened) return opened;
  const loaded = loadNativeAddon();
  const addon = loaded.addon as unknown as Partial<MpiAddon> | null;
  if (!addon || typeof addon.mpiOpen !== 'function') {
    throw new Error(`mpi: the native addon with MPI support is not available (${loaded.addon ? 'addon built before native/dist' : loaded.reason}); run \`node scripts/build-native.mjs\``);
  }
  let info: { rank: number; size: number };
  try {
    info = addon.mpiOpen(mpiLibraryName());
  } catch (err) {
    throw new Error(`mpi: cannot load MPI (${(err as Error).message}); ${INSTALL_HINT}`);
  }
  opened = { addon: addon as MpiAddon, rank: info.rank, size: info.size };
  return opened;
}

/** Whether MPI can be loaded, without initialising it: null, or why not (one line). */
export function probeMpi(): string | null {
  const loaded = loadNativeAddon();
  const addon = loaded.addon as unknown as Partial<MpiAddon> | null;
  if (!addon || typeof addon.mpiProbe !== 'function') return `the native addon with MPI support is not available (${loaded.addon ? 'addon built before native/dist' : loaded.reason})`;
  return addon.mpiProbe(mpiLibraryName());
}

/** Whether this process was started by mpirun / mpiexec (Open MPI's or an MPICH family's). */
export function launchedByMpirun(): boolean {
  return mpiLauncher() !== null;
}

/** Ranks the launcher started on this machine (Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE, MPICH's MPI_LOCALNRANKS), or null when it does not say. */
export function ranksOnThisMachine(): number | null {
  const n = Number(process.env.OMPI_COMM_WORLD_LOCAL_SIZE ?? process.env.MPI_LOCALNRANKS);
  return Number.isInteger(n) && n >= 1 ? n : null;
}
