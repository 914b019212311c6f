// Expert banks: E stacked FFNs run over expert-contiguous rows with grouped GEMMs.
// SwiGLU (gate/up separate, fused halves or interleaved), GELU MLP (CT-MoE), and GPT-OSS's
// clamped SwiGLU with biases.
import type { FloatDType } from '../backend/types.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { randn, zeros } from '../ops/creation.js';
import { add, clamp, gelu, mul, sigmoid, silu } from '../ops/elementwise.js';
import { indexSelect } from '../ops/indexing.js';
import { narrow, reshape } from '../ops/shape.js';
import { Module, Parameter } from '../nn/module.js';
import { uniform_ } from '../nn/init.js';
import type { ExpertConfig } from './config.js';
import type { ExpertExecutionMetadata } from './contracts.js';
import { groupedMatmul } from './grouped-gemm.js';
import { groupedMatmulOnDevice } from './device/grouped-gemm.js';
import type { ExpertWeights } from './expert-weights.js';
import { bankKernels } from './execution/plan.js';
import { expertsNode } from './kernel-path/experts-node.js';

export type { ExpertWeights } from './expert-weights.js';

/** Per-expert facts of one forward's activations: GPT-OSS's clamps (elements its limit cut), per expert. */
export interface ActivationFacts {
  /** [E] gate pre-activations above swigluLimit. */
  gateClamped: Int32Array;
  /** [E] up pre-activations outside ±swigluLimit. */
  upClamped: Int32Array;
}

/** Run every row through its expert: rows [S, H] -> [S, H]. With `facts`, also the clamp counts of a 'gpt-oss' bank (a read of gate and up: only when asked). */
export function runExperts(
  rows: Tensor,
  exec: ExpertExecutionMetadata,
  w: ExpertWeights,
  cfg: ExpertConfig,
  facts?: ActivationFacts,
): Tensor {
  const transB = cfg.orientation === 'out-in';
  const lin = (x: Tensor, weight: Tensor, bias: Tensor | null | undefined): Tensor => {
    const y = exec.deviceSegOffsets
      ? groupedMatmulOnDevice(x, weight, exec.deviceSegOffsets, { transB })
      : groupedMatmul(x, weight, exec.segOffsets, { transB });
    return bias ? add(y, indexSelect(bias, 0, exec.rowExperts)) : y;
  };
  const need = (t: Tensor | null | undefined, name: string): Tensor => {
    if (!t) throw new Error(`runExperts: a '${cfg.kind}' bank with layout '${cfg.layout}' needs ${name}`);
    return t;
  };
  const S = rows.shape[0]!;
  const I = cfg.intermediateSize;
  let h: Tensor;
  if (cfg.kind === 'gelu') {
    h = gelu(lin(rows, need(w.upProj, 'upProj'), w.gateUpBias));
  } else {
    let gate: Tensor;
    let up: Tensor;
    if (cfg.layout === 'separate') {
      gate = lin(rows, need(w.gateProj, 'gateProj'), null);
      up = lin(rows, need(w.upProj, 'upProj'), null);
    } else {
      const gu = lin(rows, need(w.gateUpProj, 'gateUpProj'), w.gateUpBias);
      if (cfg.layout === 'fused') {
        gate = narrow(gu, 1, 0, I);
        up = narrow(gu, 1, I, I);
      } else {
        const pairs = reshape(gu, [S, I, 2]); // column 2i is gate i, 2i+1 is up i
        gate = reshape(narrow(pairs, 2, 0, 1), [S, I]);
        up = reshape(narrow(pairs, 2, 1, 1), [S, I]);
      }
    }
    h = cfg.kind === 'swiglu' ? mul(silu(gate), up) : clampedSwiglu(gate, up, cfg.swigluLimit, cfg.swigluAlpha);
    if (facts && cfg.kind === 'gpt-oss' && !exec.deviceSegOffsets) countClamps(gate, up, exec.segOffsets, cfg.swigluLimit, facts);
  }
  return lin(h, w.downProj, w.downBias);
}

/** Adds each expert's clamped gate (> L) and up (|up| > L) elements to facts. gate, up [S, I]. */
function countClamps(gate: Tensor, up: Tensor, seg: Int32Array, limit: number, facts: ActivationFacts): void {
  const g = gate.dataSync();
  const u = up.dataSync();
  const I = gate.shape[1]!;
  for (let e = 0; e + 1 < seg.length; e++) {
    for (let i = seg[e]! * I; i < seg[e + 1]! * I; i++) {
      if (g[i]! > limit) facts.gateClamped[e]!++;
      if (Math.abs(u[i]!) > limit) facts.upClamped[e]!++;
    }
  }
}

/** GPT-OSS: gate = min(gate, L); up = clamp(up, -L, L); out = (up + 1) · gate · σ(α·gate). */
export function clampedSwiglu(gate: Tensor, up: Tensor, limit: number, alpha: number): Tensor {
  const g = clamp(gate, -Infinity, limit);
  const u = clamp(up, -limit, limit);
  return mul(add(u, 1), mul(g, sigmoid(mul(g, alpha))));
}

export interface ExpertBankOptions {
  dtype?: FloatDType;
  generator?: Generator;
  /** 'uniform' (default): U(±1/sqrt(fan_in)), PyTorch Linear's; 'normal': randn / sqrt(fan_in) (CT-MoE's experts). Biases are uniform either way. */
  init?: 'uniform' | 'normal';
  /**
   * This bank holds experts [first, first + numExperts) of a bank of `total` (expert
   * parallelism: other processes hold the rest). Its weights are the ones the whole bank draws
   * from the same generator: the other experts' draws are taken and dropped, never stored.
   */
  shard?: { first: number; total: number };
}

/** E experts as stacked Parameters; init per expert U(±1/sqrt(fan_in)) (PyTorch Linear's default) or randn / sqrt(fan_in). */
export class ExpertBank extends Module {
  readonly gateProj: Parameter | null;
  readonly upProj: Parameter | null;
  readonly gateUpProj: Parameter | null;
  readonly downProj: Parameter;
  readonly gateUpBias: Parameter | null;
  readonly downBias: Parameter | null;

  constructor(
    readonly numExperts: number,
    readonly hiddenSize: number,
    readonly cfg: ExpertConfig,
    options: ExpertBankOptions = {},
  ) {
    super();
    const gen = options.generator ?? defaultGenerator;
    const dtype = options.dtype ?? 'f32';
    const E = numExperts;
    const H = hiddenSize;
    const I = cfg.intermediateSize;
    const { first, total } = options.shard ?? { first: 0, total: E };
    if (!(Number.isInteger(first) && first >= 0 && first + E <= total))
      throw new RangeError(`ExpertBank: shard experts [${first}, ${first + E}) must lie inside the ${total} experts of the whole bank`);
    // the draws of a whole bank's tensor [total, ...] in row-major order, this bank's rows kept
    const sharded = (perExpert: number, draw: () => number, make: () => Parameter): Parameter => {
      for (let i = first * perExpert; i > 0; i--) draw();
      const p = make();
      for (let i = (total - first - E) * perExpert; i > 0; i--) draw();
      return p;
    };
    const mat = (out: number, inp: number): Parameter => {
      const shape = cfg.orientation === 'out-in' ? [E, out, inp] : [E, inp, out];
      if (options.init === 'normal')
        return sharded(
          out * inp,
          () => gen.normal(),
          () => new Parameter(mul(randn(shape, { dtype, generator: gen }), 1 / Math.sqrt(inp))),
        );
      return sharded(
        out * inp,
        () => gen.uniform(),
        () => uniform_(new Parameter(zeros(shape, { dtype })), -1 / Math.sqrt(inp), 1 / Math.sqrt(inp), gen),
      );
    };
    const vec = (n: number, fan: number): Parameter =>
      sharded(
        n,
        () => gen.uniform(),
        () => uniform_(new Parameter(zeros([E, n], { dtype })), -1 / Math.sqrt(fan), 1 / Math.sqrt(fan), gen),
      );
    const separate = cfg.kind === 'gelu' || cfg.layout === 'separate';
    const firstOut = cfg.kind === 'gelu' ? I : 2 * I;
    this.gateProj = separate && cfg.kind !== 'gelu' ? mat(I, H) : null;
    this.upProj = separate ? mat(I, H) : null;
    this.gateUpProj = separate ? null : mat(2 * I, H);
    this.downProj = mat(H, I);
    // a bias on the first projection is supported for fused layouts and GELU (upProj)
    this.gateUpBias = cfg.bias && (!separate || cfg.kind === 'gelu') ? vec(firstOut, H) : null;
    this.downBias = cfg.bias ? vec(H, I) : null;
  }

  /** Set by MoELayer.forwardWithRouting({ activationFacts: true }) for one forward: the clamp counts are added here. */
  activationFacts: ActivationFacts | null = null;

  forward(rows: Tensor, exec: ExpertExecutionMetadata): Tensor {
    // the backend's MoE kernels as one node where the execution plan says they apply
    const fits =
      rows.ndim === 2 &&
      rows.shape[1] === this.hiddenSize &&
      exec.segOffsets.length === this.numExperts + 1 &&
      exec.segOffsets[this.numExperts] === rows.shape[0];
    // the clamp counts asked for (activationFacts) come from the composition
    const k = fits && !this.activationFacts ? bankKernels(rows, this, this.cfg) : null;
    if (k) return expertsNode(k, rows, exec.segOffsets, this, this.cfg);
    return runExperts(rows, exec, this, this.cfg, this.activationFacts ?? undefined);
  }
}
