// How MoE work executes: the one place that decides. Three paths, from slowest to fastest:
//  - 'reference': the composition of engine ops (router.ts, dispatch.ts, experts.ts); runs on
//    every backend and is the spec the other two are tested against;
//  - 'kernels':   the backend's MoE kernels (Backend.moe): the router pass, and dispatch ->
//    experts -> combine as one autograd node (kernel-path/experts-node.ts), each where it covers
//    the configuration, the composition elsewhere;
//  - 'layer':     the whole routed block (router GEMM, router pass, slot plan, experts, combine)
//    as ONE autograd node whose backward also applies the aux losses' gradient
//    (kernel-path/layer-node.ts), where router and experts are both covered;
//  - 'device':    on a backend that cannot read synchronously (webgpu: Backend.deviceMoe), the
//    composition with routing, counts and the slot plan kept in device tensors, the experts on
//    worst-case-sized rows with device segment offsets (src/moe/device/): nothing waits for the GPU;
//  - 'parallel':  across ranks (a layer given a ParallelExecution: parallel.ts, built by src/dist):
//    expert or tensor parallel; inside it the router and the rank's experts run on what the
//    paths above would pick for them (the kernels where they cover it, else the composition).
// An MoELayer plans once (planLayer) and again only when its backend, dtype or the
// MOEKIT_MOE_PATH setting changes; the per-call conditions (mask, jitter in training, an input
// on another backend) are checked here too (layerCall). Standalone ops (routeLogits,
// ExpertBank.forward, groupedMatmul) ask routerKernels / bankKernels / groupedGemmKernels.
import type { Backend } from '../../backend/backend.js';
import type { DeviceMoeKernels, MoeKernels } from '../../backend/moe.js';
import { type DType, isFloatDType, isHalfDType } from '../../backend/types.js';
import { autocastDtype } from '../../amp/autocast.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { ExpertConfig, MoEConfig, RouterConfig } from '../config.js';
import type { Dispatcher } from '../contracts.js';
import { LocalDispatcher } from '../dispatch.js';
import { ExpertChoiceDispatcher } from '../expert-choice.js';
import type { ExpertWeights } from '../expert-weights.js';
import { envSwitch, readEnv } from '../../env.js';
import { type ParallelSpec, describeParallel } from './parallel.js';

export type MoePath = 'reference' | 'kernels' | 'layer' | 'device' | 'parallel';

/** MOEKIT_MOE_PATH: 'auto' (default: the fastest path covered, on a backend whose kernels are fast) or a single-process path to force. */
export type MoePathSetting = 'auto' | Exclude<MoePath, 'parallel'>;

/** MOEKIT_MOE_PATH, validated by the registry (src/env.ts). */
export function moePathSetting(): MoePathSetting {
  return (readEnv('MOEKIT_MOE_PATH') as MoePathSetting | undefined) ?? 'auto';
}

/**
 * The backend's MoE kernels when the setting lets them run on this backend and dtype, else null.
 * The kernels are f32 / f64; for the experts (`experts`) also bf16, where the backend's grouped
 * GEMMs read bf16 operands (MoeKernels.bf16). f16 and a bf16 router compose the engine ops (the
 * router computes in f32 there, as the seeds route in fp32). Under autocast only a layer's
 * experts (`autocastExperts`: f32 weights under autocast bf16) take them, in bf16 (autocastKernels).
 */
function kernelsOn(backend: Backend, dtype: DType, setting: MoePathSetting, experts = false, autocastExperts = false): MoeKernels | null {
  const k = backend.moe;
  if (!k || setting === 'reference' || !isFloatDType(dtype)) return null;
  if (autocastDtype() !== null && !(autocastExperts && autocastKernels(k, dtype))) return null;
  if (isHalfDType(dtype) && !(experts && dtype === 'bf16' && k.bf16)) return null;
  return setting === 'auto' && !k.fast ? null : k;
}

/**
 * Under autocast bf16, f32 expert weights run on the bf16 experts node (x and the weights cast to
 * bf16 each forward, differentiably: their gradients come back in f32) where the kernels read bf16.
 */
export function autocastKernels(k: MoeKernels, dtype: DType): boolean {
  return autocastDtype() === 'bf16' && dtype === 'f32' && Boolean(k.bf16);
}

/** Why the router pass kernel does not cover cfg, or null when it does (softmax top-k token choice, sum / no renormalisation). */
function routerGap(cfg: RouterConfig, hasSelectionBias: boolean): string | null {
  if (cfg.kind !== 'token-choice') return `router kind '${cfg.kind}'`;
  if (cfg.scoreFunc !== 'softmax') return `score function '${cfg.scoreFunc}'`;
  if (cfg.selectOn !== 'scores') return `selection on ${cfg.selectOn}`;
  if (hasSelectionBias) return 'a selection bias';
  if (cfg.groupLimit) return 'a group limit';
  if (cfg.sparseMixer) return 'sparsemixer routing';
  if (cfg.sanitizeLogits) return 'sanitised logits';
  if (cfg.uniformAssignment) return 'uniform assignment';
  if (cfg.renormalize !== 'none' && cfg.renormalize !== 'sum') return `renormalize '${cfg.renormalize}'`;
  return null;
}

/** Why the experts node on kernels k does not cover the bank, or null when it does (every expert kind, with or without biases, where k has the kernels it needs). */
function bankGap(cfg: ExpertConfig, hasBiases: boolean, k: MoeKernels, dtype: DType): string | null {
  if (hasBiases && dtype === 'bf16') return 'expert biases in bf16 (the bf16 experts node takes none)';
  if (cfg.kind === 'gelu' && !(k.geluForward && k.geluBackward && k.gemmGelu))
    return "expert kind 'gelu' (no GELU kernels on this backend)";
  if (cfg.kind === 'gpt-oss' && !(k.gptOssForward && k.gptOssBackward)) return "expert kind 'gpt-oss' (no GPT-OSS kernels on this backend)";
  if (hasBiases && !k.expertBias) return 'expert biases (no expert bias kernel on this backend)';
  return null;
}

/** Why dispatch -> experts -> combine cannot be one node with this dispatcher, or null. */
function dispatcherGap(d: Dispatcher, numExperts: number): string | null {
  if (!(d instanceof LocalDispatcher) || d.constructor !== LocalDispatcher) return `dispatcher ${d.constructor.name}`;
  if (d.cfg.weightsOn !== 'output') return 'weights on the input';
  if (d.numExperts !== numExperts) return 'a dispatcher for another expert count';
  return null;
}

/** The tensors all share t's backend and storage type. */
export function together(t: Tensor, others: readonly (Tensor | null | undefined)[]): boolean {
  return others.every((o) => !o || (o.backend === t.backend && o.storage.constructor === t.storage.constructor));
}

/** The weights of a bank that its kernels read. */
export function bankTensors(w: ExpertWeights): (Tensor | null | undefined)[] {
  return [w.gateProj, w.upProj, w.gateUpProj, w.downProj, w.gateUpBias, w.downBias];
}

/** What an MoELayer runs, decided when it is built (see the header). */
export interface ExecutionPlan {
  readonly path: MoePath;
  /** The kernels of the 'kernels' / 'layer' paths (null on 'reference' and 'device'). */
  readonly kernels: MoeKernels | null;
  /** The device kernels of the 'device' path (else null). */
  readonly device?: DeviceMoeKernels | null;
  /** The router pass runs as the backend's kernel (else the composition). */
  readonly routerKernel: boolean;
  /** dispatch -> experts -> combine runs as one node over the kernels (else dispatcher + bank). */
  readonly expertsKernel: boolean;
  /** One line: what runs and why. */
  readonly summary: string;
  /** What the plan was made for; a change means planning again. */
  readonly key: string;
}

/** What a layer's plan depends on. */
export interface PlanInputs {
  cfg: MoEConfig;
  backend: Backend;
  /** The dtype of the layer's weights. */
  dtype: DType;
  dispatcher: Dispatcher;
  /** The expert bank has biases (GPT-OSS). */
  bankBiases: boolean;
  /** Every weight lives on `backend` in `dtype`. */
  weightsTogether: boolean;
  /** Across ranks (MoELayer.parallelize), else null / absent. */
  parallel?: ParallelSpec | null;
}

/** The dispatcher an MoELayer builds unless it is given one: ExpertChoiceDispatcher for router.kind 'expert-choice', else LocalDispatcher. */
export function defaultDispatcher(cfg: MoEConfig): Dispatcher {
  const E = cfg.router.numExperts;
  return cfg.router.kind === 'expert-choice' ? new ExpertChoiceDispatcher(E, cfg.dispatch) : new LocalDispatcher(E, cfg.dispatch);
}

/** The plan of a layer built from cfg on `backend` (its weights in `dtype`), without building it: `moekit info --layer` (with --ep / --tp: parallel). */
export function planForConfig(cfg: MoEConfig, backend: Backend, dtype: DType = 'f32', parallel: ParallelSpec | null = null): ExecutionPlan {
  return planLayer({
    cfg,
    backend,
    dtype,
    dispatcher: defaultDispatcher(cfg),
    bankBiases: cfg.experts.bias,
    weightsTogether: true,
    parallel,
  });
}

export function planKey(p: PlanInputs): string {
  const ac = autocastDtype();
  return `${p.backend.name}/${p.dtype}${ac ? `/autocast-${ac}` : ''}/${moePathSetting()}${p.parallel ? `/${describeParallel(p.parallel)}` : ''}`;
}

export function planLayer(p: PlanInputs): ExecutionPlan {
  if (p.parallel) return planParallel(p, p.parallel);
  const setting = moePathSetting();
  const key = planKey(p);
  const b = p.backend;
  const reference = (why: string): ExecutionPlan => ({
    path: 'reference',
    kernels: null,
    routerKernel: false,
    expertsKernel: false,
    summary: `reference composition: ${why}`,
    key,
  });
  const dev = deviceKernels(b);
  if (dev) {
    const gap = deviceGap(p);
    if (gap)
      throw new Error(
        `MoELayer on the ${b.name} backend: ${gap} is not supported on device-resident routing (run it on the native or reference backend)`,
      );
    return {
      path: 'device',
      kernels: null,
      device: dev,
      routerKernel: false,
      expertsKernel: false,
      summary: `device-resident composition on the ${b.name} backend: routing, counts and slot plan stay on the device; grouped GEMMs read device segment offsets`,
      key,
    };
  }
  if (setting === 'reference') return reference('MOEKIT_MOE_PATH=reference');
  if (!b.moe) return reference(`the ${b.name} backend has no MoE kernels`);
  const k = kernelsOn(b, p.dtype, setting, true, true);
  const ac = autocastDtype();
  if (!k)
    return reference(
      ac !== null
        ? `autocast ${ac}${ac === 'bf16' && p.dtype === 'f32' ? ` (the ${b.name} backend's grouped GEMMs read no bf16)` : ` over ${p.dtype} weights`}`
        : isFloatDType(p.dtype) && !isHalfDType(p.dtype)
          ? `the ${b.name} backend's MoE kernels are not faster (MOEKIT_MOE_PATH=kernels runs them)`
          : `dtype ${p.dtype}`,
    );
  const rc = p.cfg.router;
  // the experts' dtype: bf16 under autocast (the weights cast each forward)
  const eDtype = ac !== null ? 'bf16' : p.dtype;
  const rGap =
    ac !== null
      ? 'autocast bf16 (the router composes in f32)'
      : p.dtype === 'bf16'
        ? 'bf16 (the router composes in f32)'
        : routerGap(rc, rc.selectionBias !== null);
  const eGap =
    bankGap(p.cfg.experts, p.bankBiases, k, eDtype) ??
    dispatcherGap(p.dispatcher, rc.numExperts) ??
    (p.weightsTogether ? null : 'weights on different backends or dtypes');
  const where = `${b.name} backend, ${ac !== null ? `bf16 (autocast over f32 weights, cast each forward)` : p.dtype}`;
  if (rGap && eGap) return reference(`no MoE kernel covers it (router: ${rGap}; experts: ${eGap})`);
  const layerGap =
    rGap ??
    eGap ??
    (rc.routerBias ? 'a router bias' : null) ??
    (p.cfg.topology ? 'the CT-MoE topology (its routing bias and combine coefficients come from S)' : null) ??
    (setting === 'kernels' ? 'MOEKIT_MOE_PATH=kernels' : null);
  if (!layerGap) {
    const jitter = rc.jitterEps > 0 ? '; the kernel chain while jitter applies (training)' : '';
    return {
      path: 'layer',
      kernels: k,
      routerKernel: true,
      expertsKernel: true,
      summary: `whole-layer node (router GEMM, router pass, slot plan, ${expertName(p.cfg.experts)} experts, combine) on the ${where}${jitter}`,
      key,
    };
  }
  const parts = [
    rGap ? `router: composition (${rGap})` : 'router: kernel',
    eGap ? `experts: composition (${eGap})` : 'experts: one kernel node',
  ];
  return {
    path: 'kernels',
    kernels: k,
    routerKernel: !rGap,
    expertsKernel: !eGap,
    summary: `kernel chain on the ${where}: ${parts.join('; ')}; not one layer node: ${layerGap}`,
    key,
  };
}

/** What the parallel plan refuses (a one-line error: the layer cannot run across ranks so), or null. */
function parallelGap(p: PlanInputs, s: ParallelSpec): string | null {
  const { router: rc, topology, dispatch, losses } = p.cfg;
  if (rc.kind !== 'token-choice') return `router.kind '${rc.kind}' is not supported across ranks (only 'token-choice')`;
  if (topology?.collaboration && dispatch.weightsOn === 'input')
    return "CT-MoE message passing (topology.collaboration) with dispatch.weightsOn 'input' is not supported across ranks (use weightsOn 'output')";
  if (losses.lbGranularity === 'instance' && losses.lbWeight > 0)
    return "losses.lbGranularity 'instance' is not supported across ranks (use 'local-batch' or 'global-batch')";
  // every TP rank routes the same tokens: their routing must not depend on a per-rank random draw
  if (s.kind === 'tp' && s.ranks > 1 && rc.jitterEps > 0)
    return 'router.jitterEps > 0 would give each rank different routing (its noise is drawn per process); use jitterEps 0 or the ep block';
  if (deviceKernels(p.backend))
    return `the ${p.backend.name} backend keeps routing on the device, and the all-to-all dispatcher reads it on the host (run it on the native or reference backend)`;
  return null;
}

/**
 * The 'parallel' path: what crosses ranks is the strategy's (parallel.ts); the router and the
 * rank's experts run on what one process would pick for them: the router pass kernel where it
 * covers the router, the experts node where the kernels cover the bank (its rows each carry one
 * local expert, dispatched by a LocalDispatcher over the rank's experts), else the composition.
 */
function planParallel(p: PlanInputs, s: ParallelSpec): ExecutionPlan {
  const gap = parallelGap(p, s);
  if (gap) throw new Error(`${s.kind} MoE block: ${gap}`);
  const setting = moePathSetting();
  const b = p.backend;
  const k = b.moe && setting !== 'reference' ? kernelsOn(b, p.dtype, setting, true) : null;
  const noKernels =
    setting === 'reference'
      ? 'MOEKIT_MOE_PATH=reference'
      : !b.moe
        ? `the ${b.name} backend has no MoE kernels`
        : autocastDtype() !== null
          ? `autocast ${autocastDtype()}`
          : isFloatDType(p.dtype) && !isHalfDType(p.dtype)
            ? `the ${b.name} backend's MoE kernels are not faster`
            : `dtype ${p.dtype}`;
  const rc = p.cfg.router;
  const rGap = !k ? noKernels : p.dtype === 'bf16' ? 'bf16 (the router composes in f32)' : routerGap(rc, rc.selectionBias !== null);
  const eGap = !k
    ? noKernels
    : (bankGap(p.cfg.experts, p.bankBiases, k, p.dtype) ??
      (p.cfg.dispatch.weightsOn === 'output' ? null : 'weights on the input') ??
      (p.weightsTogether ? null : 'weights on different backends or dtypes'));
  const own =
    p.dispatcher.constructor === LocalDispatcher ? '' : `; the layer's ${p.dispatcher.constructor.name} does not run across ranks`;
  const where = `${b.name} backend, ${p.dtype}`;
  return {
    path: 'parallel',
    kernels: rGap && eGap ? null : k,
    routerKernel: !rGap,
    expertsKernel: !eGap,
    summary:
      `${describeParallel(s)}; router: ${rGap ? `composition (${rGap})` : `kernel on the ${where}`}; ` +
      `local experts: ${eGap ? `composition (${eGap})` : `one ${expertName(p.cfg.experts)} kernel node on the ${where}`}${own}`,
    key: planKey(p),
  };
}

/** The backend's device MoE kernels when it has them and no host-side ones (it cannot read synchronously), else null. */
export function deviceKernels(b: Backend): DeviceMoeKernels | null {
  return !b.moe && b.deviceMoe ? b.deviceMoe : null;
}

/** What the 'device' path does not cover (routing that reads its scores on the host), or null. */
function deviceGap(p: PlanInputs): string | null {
  const rc = p.cfg.router;
  if (rc.kind !== 'token-choice') return `router.kind '${rc.kind}'`;
  if (rc.sparseMixer) return 'router.sparseMixer';
  if (rc.sanitizeLogits) return 'router.sanitizeLogits';
  if (!(p.dispatcher instanceof LocalDispatcher) || p.dispatcher.constructor !== LocalDispatcher)
    return `dispatcher ${p.dispatcher.constructor.name}`;
  return null;
}

export interface LayerCall {
  x: Tensor;
  mask: Tensor | null;
  training: boolean;
  /** Aux losses will be computed (training with grad). */
  wantLosses: boolean;
  /** The caller asked for the activations' facts (GPT-OSS clamp counts), which the composition counts. */
  activationFacts: boolean;
}

/** What this forward runs under the plan: the per-call conditions. */
export function layerCall(
  plan: ExecutionPlan,
  p: PlanInputs,
  c: LayerCall,
): { layerNode: boolean; routerKernel: boolean; expertsKernel: boolean } {
  // the plan was made for this autocast state (planKey): under autocast bf16 its experts take f32 x and cast it
  const onPlan = c.x.backend === p.backend && c.x.dtype === p.dtype && c.x.ndim === 2;
  const routerKernel = plan.routerKernel && onPlan;
  const expertsKernel = plan.expertsKernel && onPlan && !c.activationFacts;
  const layerNode =
    plan.path === 'layer' &&
    expertsKernel &&
    !(c.training && p.cfg.router.jitterEps > 0) &&
    !(c.wantLosses && !routerKernelLossesCover(p.cfg, c.mask));
  return { layerNode, routerKernel, expertsKernel };
}

/** Whether the router kernel's aux losses cover this forward's (no mask, no per-sequence LB). */
export function routerKernelLossesCover(cfg: MoEConfig, mask: Tensor | null): boolean {
  return !mask && cfg.losses.lbGranularity !== 'instance';
}

/** routeLogits: the router pass kernel when it covers cfg on the logits' backend, else null. */
export function routerKernels(logits: Tensor, cfg: RouterConfig, selectionBias: Tensor | null): MoeKernels | null {
  const k = kernelsOn(logits.backend, logits.dtype, moePathSetting());
  return k && !routerGap(cfg, selectionBias !== null) ? k : null;
}

/** ExpertBank.forward on expert-contiguous rows: the kernels when they cover the bank on rows' backend, else null. */
export function bankKernels(rows: Tensor, w: ExpertWeights, cfg: ExpertConfig): MoeKernels | null {
  const k = kernelsOn(rows.backend, rows.dtype, moePathSetting(), true);
  return k && !bankGap(cfg, Boolean(w.gateUpBias || w.downBias), k, rows.dtype) && together(rows, bankTensors(w)) ? k : null;
}

const expertName = (cfg: ExpertConfig) => ({ swiglu: 'SwiGLU', gelu: 'GELU', 'gpt-oss': 'GPT-OSS' })[cfg.kind];

/** groupedMatmul: the grouped GEMM kernel, or null (the per-segment matmuls, bit-identical to a plain matmul below ~32^3 multiply-adds). */
export function groupedGemmKernels(x: Tensor, w: Tensor, work: number): MoeKernels | null {
  if (work < 32768) return null;
  const k = kernelsOn(x.backend, x.dtype, moePathSetting());
  return k && together(x, [w]) ? k : null;
}

/** Above this, one expert's weights and their gradients no longer fit a core's L2 beside a block of rows. */
const ROW_BLOCKS_MAX_EXPERT_BYTES = 1 << 20;

/**
 * Whether the experts node runs its forward and its backward each block of rows by block of rows
 * (MoeKernels.rowBlocks) rather than pass by pass: where one expert's weights are small enough
 * that a thread keeps them, their gradients and a block's intermediates in its L2.
 * MOEKIT_MOE_ROW_BLOCKS=0 / 1 forces it off / on.
 */
export function rowBlocksApply(hidden: number, intermediate: number, bytesPerElement: number): boolean {
  return envSwitch('MOEKIT_MOE_ROW_BLOCKS', 3 * hidden * intermediate * bytesPerElement <= ROW_BLOCKS_MAX_EXPERT_BYTES);
}
