// Expert surgery: dense -> MoE upcycling, routing statistics, pruning and merging.
export * from './upcycle.js';
export * from './routing-stats.js';
export * from './prune-merge.js';
export { type ExpertSources, rebuildExperts } from './bank-rows.js';
