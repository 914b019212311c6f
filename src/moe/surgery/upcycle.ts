// Dense -> MoE sparse upcycling (Komatsuzaki et al., "Sparse Upcycling", 2022): every expert
// starts as a copy of the dense SwiGLU MLP, the router is new (zero-mean normal, std 0.02 by
// default). With noise 0 and the default sum-renormalised top-k, the upcycled block computes
// exactly the dense MLP, whatever the router says; `noise` breaks the experts' symmetry by adding
// noise · rms(W) · N(0, 1) to each copied matrix.
import type { FloatDType } from '../../backend/types.js';
import { fromArray } from '../../ops/creation.js';
import { type Generator, defaultGenerator } from '../../tensor/random.js';
import type { Tensor } from '../../tensor/tensor.js';
import { type ExpertConfig, type MoEConfigInput, type RouterConfig, moeConfig } from '../config.js';
import { bankView, copyMat, plainView } from '../hf/views.js';
import { MoELayer } from '../layer.js';
import { ConfigError } from '../validate.js';

/** A dense SwiGLU MLP as PyTorch Linear weights: gate and up [I, H], down [H, I], row-major. */
export interface DenseMlpWeights {
  gate: ArrayLike<number>;
  up: ArrayLike<number>;
  down: ArrayLike<number>;
  hiddenSize: number;
  intermediateSize: number;
}

export interface UpcycleOptions {
  experts: number;
  topK: number;
  /** Relative std of the noise added to each expert copy (default 0: exact copies). */
  noise?: number;
  /** Std of the new router's zero-mean normal init (default 0.02). */
  routerStd?: number;
  /** Router options beyond numExperts / topK (default: softmax, top-k renormalised to sum 1). */
  router?: Partial<Omit<RouterConfig, 'numExperts' | 'topK'>>;
  /** The rest of the MoE config (experts' layout and orientation, dispatch, losses, shared expert). */
  moe?: Omit<Partial<MoEConfigInput>, 'hiddenSize' | 'router' | 'experts'> & {
    experts?: Partial<Omit<ExpertConfig, 'intermediateSize' | 'kind' | 'bias'>>;
  };
  dtype?: FloatDType;
  generator?: Generator;
}

export function upcycle(dense: DenseMlpWeights, opts: UpcycleOptions): MoELayer {
  const H = dense.hiddenSize;
  const I = dense.intermediateSize;
  for (const [k, n] of [
    ['gate', I * H],
    ['up', I * H],
    ['down', H * I],
  ] as const) {
    if (dense[k].length !== n)
      throw new ConfigError(
        `dense.${k}`,
        `${dense[k].length} values`,
        `${n} values (${k === 'down' ? `[H=${H}, I=${I}]` : `[I=${I}, H=${H}]`})`,
      );
  }
  const noise = opts.noise ?? 0;
  if (!(noise >= 0)) throw new ConfigError('noise', noise, 'a number >= 0');
  const g = opts.generator ?? defaultGenerator;
  const moe = opts.moe ?? {};
  const cfg = moeConfig({
    ...moe,
    hiddenSize: H,
    router: { renormalize: 'sum', ...opts.router, numExperts: opts.experts, topK: opts.topK },
    experts: { ...moe.experts, intermediateSize: I, kind: 'swiglu', bias: false },
  });
  const dtype = opts.dtype ?? 'f32';
  const layer = new MoELayer(cfg, { dtype, generator: g });
  const alloc = (n: number) => (dtype === 'f64' ? new Float64Array(n) : new Float32Array(n));
  const E = opts.experts;
  const std = opts.routerStd ?? 0.02;
  const router = alloc(E * H);
  for (let i = 0; i < router.length; i++) router[i] = std * g.normal();
  const state = new Map<string, Tensor>([['routerWeight', fromArray(router, [E, H])]]);
  const rms = (w: ArrayLike<number>) => Math.sqrt(Array.from(w).reduce((s, v) => s + v * v, 0) / w.length);
  const scale = { gate: noise * rms(dense.gate), up: noise * rms(dense.up), down: noise * rms(dense.down) };
  const L = { layout: cfg.experts.layout, orientation: cfg.experts.orientation };
  const bank = new Map<string, Float32Array | Float64Array>();
  for (const [name, p] of layer.experts.namedParameters()) bank.set(name, alloc(p.size));
  for (let e = 0; e < E; e++) {
    for (const which of ['gate', 'up', 'down'] as const) {
      const [O, In] = which === 'down' ? [H, I] : [I, H];
      const src = scale[which] > 0 ? Array.from(dense[which], (v) => v + scale[which] * g.normal()) : dense[which];
      const dst = bankView(which, e, L, I, H);
      copyMat(src, plainView(0, O, In, 'out-in'), bank.get(dst.tensor)!, dst.view, O, In);
    }
  }
  for (const [name, p] of layer.experts.namedParameters()) state.set(`experts.${name}`, fromArray(bank.get(name)!, p.shape));
  layer.loadStateDict(state, { strict: false });
  return layer;
}
