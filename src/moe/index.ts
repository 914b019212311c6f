// moekit's MoE core: configs, router, losses, balancing, dispatch, expert banks, the MoE layer.
export * from './config.js';
export * from './contracts.js';
export { route, routeLogits, maskGroups, expertCounts, type RouteOptions } from './router.js';
export * from './losses.js';
export * from './balancing.js';
export * from './aux-loss.js';
export * from './dispatch.js';
export * from './grouped-gemm.js';
export * from './experts.js';
export * from './metrics.js';
export * from './layer.js';
export * from './hf-config.js';
export * from './presets.js';
export * from './expert-choice.js';
export * from './hf/index.js';
export { type ExecutionPlan, type MoePath, type MoePathSetting, planForConfig } from './execution/plan.js';
