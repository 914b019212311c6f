// Optimisers, learning-rate schedules, gradient clipping.
export {
  AdamW,
  type AdamWOptions,
  type AdamWParamState,
  type AdamWStateDict,
  type ParamGroup,
  type ParamGroupInput,
} from './adamw.js';
export {
  LRScheduler,
  warmupCosine,
  type HasParamGroups,
  type LrLambda,
  type LRSchedulerState,
  type WarmupCosineOptions,
} from './schedule.js';
export { clipGradNorm } from './clip.js';
