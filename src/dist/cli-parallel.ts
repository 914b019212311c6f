// What the CLI needs from src/dist: `--parallel` set-up and `moekit info`'s MPI line.
import { worldCommunicator } from './communicator.js';
import { DataParallel } from './data-parallel.js';
import { INSTALL_HINT, launchedByMpirun, mpiLibraryName, probeMpi } from './native-mpi.js';

export type ParallelMode = 'dp' | 'ep';

/** The data-parallel set-up for `--parallel dp`; a one-line Error when it cannot run. */
export function startParallel(mode: ParallelMode, command: string): DataParallel {
  const why = probeMpi();
  if (why !== null) throw new Error(`--parallel ${mode}: Open MPI not found (${why}); ${INSTALL_HINT}`);
  if (!launchedByMpirun()) throw new Error(`--parallel ${mode}: start the ranks with mpirun, e.g. mpirun -np 2 npx moekit ${command} --parallel ${mode}`);
  if (mode === 'ep') {
    throw new Error("--parallel ep: the CT-MoE ablation's layers (CtMoeLayer with its collaboration topology) have no expert-parallel form; use --parallel dp (MoELayer runs expert-parallel through buildMoeBlock('ep'))");
  }
  return new DataParallel(worldCommunicator('mpi'));
}

/** One line for `moekit info`: whether Open MPI was found, and this process's world size. */
export function mpiInfoLine(): string {
  const why = probeMpi();
  if (why !== null) return `MPI: not found (${why}); ${INSTALL_HINT}`;
  const size = process.env.OMPI_COMM_WORLD_SIZE;
  const rank = process.env.OMPI_COMM_WORLD_RANK;
  return `MPI: Open MPI found (${mpiLibraryName()}); ${launchedByMpirun() ? `world size ${size}, this is rank ${rank}` : 'world size 1 (not started by mpirun)'}`;
}
