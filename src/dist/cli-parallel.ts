// What the CLI needs from src/dist: `--parallel` set-up and `moekit info`'s MPI line.
import { worldCommunicator } from './communicator.js';
import { DataParallel } from './data-parallel.js';
import { ExpertParallel } from './expert-parallel.js';
import { INSTALL_HINT, launchedByMpirun, mpiLibraryName, probeMpi, ranksOnThisMachine } from './native-mpi.js';

export type ParallelMode = 'dp' | 'ep';

/** The set-up for `--parallel dp|ep`; a one-line Error when it cannot run. */
export function startParallel(mode: ParallelMode, command: string): DataParallel | ExpertParallel {
  const why = probeMpi();
  if (why !== null) throw new Error(`--parallel ${mode}: MPI not found (${why}); ${INSTALL_HINT}`);
  if (!launchedByMpirun()) throw new Error(`--parallel ${mode}: start the ranks with mpirun, e.g. mpirun -np 2 npx moekit ${command} --parallel ${mode}`);
  const world = worldCommunicator('mpi');
  return mode === 'ep' ? new ExpertParallel(world) : new DataParallel(world);
}

/** How a run is spread for the memory estimate (experiments/ctmoe/memory.ts's ParallelLayout): mode, ranks, ranks on this machine. */
export function parallelLayout(par: DataParallel | ExpertParallel): { mode: ParallelMode; ranks: number; ranksOnMachine: number } {
  return { mode: par instanceof ExpertParallel ? 'ep' : 'dp', ranks: par.size, ranksOnMachine: ranksOnThisMachine() ?? par.size };
}

/** One line for `moekit info`: which MPI library was found, and this process's world size (from its launcher's environment). */
export function mpiInfoLine(): string {
  const why = probeMpi();
  if (why !== null) return `MPI: not found (${why}); ${INSTALL_HINT}`;
  const size = process.env.OMPI_COMM_WORLD_SIZE ?? process.env.PMI_SIZE;
  const rank = process.env.OMPI_COMM_WORLD_RANK ?? process.env.PMI_RANK;
  return `MPI: found (${mpiLibraryName()}); ${launchedByMpirun() ? `world size ${size}, this is rank ${rank}` : 'world size 1 (not started by mpirun / mpiexec)'}`;
}
