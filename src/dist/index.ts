// Distributed execution: communicators (Open MPI or one process), differentiable collectives,
// Diffulex's token dispatchers and naive / TP / EP MoE blocks.
export * from './communicator.js';
export * from './contracts.js';
export * from './differentiable.js';
export * from './naive-dispatcher.js';
export * from './tp-execution.js';
export * from './tp-block.js';
export * from './ep-execution.js';
export * from './ep-block.js';
export * from './builders.js';
export { expertShardFor } from './partition.js';
export { INSTALL_HINT as MPI_INSTALL_HINT, launchedByMpirun } from './native-mpi.js';
export * from './data-parallel.js';
export * from './expert-parallel.js';
export { startParallel, mpiInfoLine, type ParallelMode } from './cli-parallel.js';
