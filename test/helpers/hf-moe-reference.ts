// Independent step-by-step MoE blocks of real models, in plain JS over f64, written from
// spec/hf-moe.md and reading the tensors under each model's own checkpoint names. Never calls
// moekit's MoE code. Aux losses follow the HF convention E·Σ_e f_e·P_e (f_e = slots of e / T,
// P_e = mean score of e); for sigmoid routers P uses the per-token renormalised scores s/Σs
// (moekit's documented OLMo-core convention, HF defines no LB loss for them); z = mean lse².
import { sigmoid, silu, softmaxRow, topkIdx } from './moe-reference.js';

export type RefTensors = Map<string, { shape: readonly number[]; data: ArrayLike<number> }>;
export type HfJson = Record<string, unknown>;

export interface RefHfResult {
  y: Float64Array;
  ids: number[][];
  w: number[][];
  lb: number;
  z: number;
}

const first = (c: HfJson, keys: string[], d?: number): number => {
  for (const k of keys) if (typeof c[k] === 'number') return c[k] as number;
  if (d === undefined) throw new Error(`reference: config needs one of ${keys.join(', ')}`);
  return d;
};

/** y = W·x for a row-major [O, In] block of `data` starting at `off`. */
function mv(data: ArrayLike<number>, off: number, O: number, In: number, x: ArrayLike<number>): Float64Array {
  const y = new Float64Array(O);
  for (let o = 0; o < O; o++) {
    let s = 0;
    for (let i = 0; i < In; i++) s += data[off + o * In + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}
/** y = xᵀ·W for a row-major [In, O] block (the "in-out" storage). */
function vm(data: ArrayLike<number>, off: number, In: number, O: number, x: ArrayLike<number>): Float64Array {
  const y = new Float64Array(O);
  for (let i = 0; i < In; i++) for (let o = 0; o < O; o++) y[o]! += x[i]! * data[off + i * O + o]!;
  return y;
}

/**
 * The MoE block of `model` (an HF model_type) at decoder layer N on x [T, H] (row-major).
 * format: 'per-expert' (experts.M.*) or 'fused' (transformers v5 experts.gate_up_proj [E,2I,H] /
 * down_proj [E,H,I], or the model's own fused form for gpt_oss / granitemoe / llama4).
 */
export function refHfMoE(
  model: string,
  cfg: HfJson,
  t: RefTensors,
  N: number,
  x: ArrayLike<number>,
  T: number,
  format: 'per-expert' | 'fused',
): RefHfResult {
  // DBRX nests its FFN sizes under ffn_config and names the width d_model
  const ffn = (cfg['ffn_config'] ?? {}) as HfJson;
  const c: HfJson =
    model === 'dbrx'
      ? {
          hidden_size: cfg['d_model'],
          num_local_experts: ffn['moe_num_experts'],
          moe_top_k: ffn['moe_top_k'],
          intermediate_size: ffn['ffn_hidden_size'],
        }
      : cfg;
  const H = first(c, ['hidden_size']);
  const E = first(c, ['num_experts', 'n_routed_experts', 'num_local_experts']);
  const K = first(c, ['num_experts_per_tok', 'moe_top_k', 'top_k', 'experts_per_token'], 2);
  const I = first(c, ['moe_intermediate_size', 'expert_intermediate_size', 'intermediate_size']);
  const p = model === 'dbrx' ? `transformer.blocks.${N}.` : `model.layers.${N}.`;
  const get = (k: string) => {
    const v = t.get(k);
    if (!v) throw new Error(`reference: no tensor '${k}'`);
    return v.data;
  };
  const mod =
    { mixtral: 'block_sparse_moe', phimoe: 'block_sparse_moe', granitemoe: 'block_sparse_moe', llama4_text: 'feed_forward', dbrx: 'ffn' }[
      model
    ] ?? 'mlp';
  const m = `${p}${mod}.`;

  // ---------------- router
  const routerKey =
    model === 'gpt_oss' || model === 'llama4_text'
      ? `${m}router.weight`
      : model === 'granitemoe' || model === 'dbrx'
        ? `${m}router.layer.weight`
        : `${m}gate.weight`;
  const Wr = get(routerKey);
  const ids: number[][] = [];
  const ws: number[][] = [];
  const logitsAll: Float64Array[] = [];
  const pAll: Float64Array[] = []; // scores for the LB loss
  const sigmoidRouter = model === 'deepseek_v3' || model === 'llama4_text';
  for (let tt = 0; tt < T; tt++) {
    const xt = Array.from({ length: H }, (_, i) => x[tt * H + i]!);
    const logits = mv(Wr, 0, E, H, xt);
    if (model === 'gpt_oss') {
      const b = get(`${m}router.bias`);
      for (let e = 0; e < E; e++) logits[e]! += b[e]!;
    }
    logitsAll.push(logits);
    let chosen: number[];
    let w: number[];
    if (model === 'mixtral') {
      const s = softmaxRow(logits);
      chosen = topkIdx(s, K);
      const z = chosen.reduce((a, e) => a + s[e]!, 0);
      w = chosen.map((e) => s[e]! / z);
    } else if (model === 'qwen2_moe' || model === 'qwen3_moe' || model === 'olmoe') {
      const s = softmaxRow(logits);
      chosen = topkIdx(s, K);
      w = chosen.map((e) => s[e]!);
      if (c['norm_topk_prob'] === true) {
        const z = w.reduce((a, v) => a + v, 0);
        w = w.map((v) => v / z);
      }
    } else if (model === 'deepseek_v3') {
      const s = logits.map(sigmoid);
      const bias = get(`${m}gate.e_score_correction_bias`);
      const sel = s.map((v, e) => v + bias[e]!);
      const G = first(c, ['n_group']);
      const n = E / G;
      const gs = Array.from({ length: G }, (_, g) =>
        Array.from(sel.slice(g * n, (g + 1) * n))
          .sort((a, b) => b - a)
          .slice(0, 2)
          .reduce((a, v) => a + v, 0),
      );
      const keep = new Set(topkIdx(gs, first(c, ['topk_group'])));
      const masked = sel.map((v, e) => (keep.has(Math.floor(e / n)) ? v : -Infinity)); // vLLM / transformers 5: -inf
      chosen = topkIdx(masked, K);
      w = chosen.map((e) => s[e]!);
      if (c['norm_topk_prob'] === true) {
        const z = w.reduce((a, v) => a + v, 0) + 1e-20;
        w = w.map((v) => v / z);
      }
      w = w.map((v) => v * first(c, ['routed_scaling_factor'], 1));
    } else if (model === 'deepseek_v2') {
      const s = softmaxRow(logits);
      let sel = s;
      if (c['topk_method'] === 'group_limited_greedy') {
        const G = first(c, ['n_group']);
        const n = E / G;
        const gs = Array.from({ length: G }, (_, g) => Math.max(...s.slice(g * n, (g + 1) * n)));
        const keep = new Set(topkIdx(gs, first(c, ['topk_group'])));
        sel = s.map((v, e) => (keep.has(Math.floor(e / n)) ? v : 0));
      }
      chosen = topkIdx(sel, K);
      w = chosen.map((e) => s[e]! * first(c, ['routed_scaling_factor'], 1));
    } else if (model === 'gpt_oss' || model === 'granitemoe') {
      chosen = topkIdx(logits, K);
      w = Array.from(softmaxRow(chosen.map((e) => logits[e]!)));
    } else if (model === 'llama4_text') {
      chosen = topkIdx(logits, K);
      w = chosen.map((e) => sigmoid(logits[e]!));
    } else if (model === 'dbrx') {
      // softmax, top-k, divided by the p-norm of the k (moe_normalize_expert_weights)
      const s = softmaxRow(logits);
      chosen = topkIdx(s, K);
      const pn = first(ffn, ['moe_normalize_expert_weights'], 1);
      const norm = chosen.reduce((a, e) => a + Math.abs(s[e]!) ** pn, 0) ** (1 / pn);
      w = chosen.map((e) => s[e]! / norm);
    } else if (model === 'phimoe') {
      // sparsemixer (eval): two rounds; each keeps the scores within a 2·eps relative gap of its max
      const eps = first(c, ['router_jitter_noise'], 0.01);
      chosen = [];
      w = [];
      for (let r = 0; r < 2; r++) {
        const cand = Array.from(logits).map((v, e) => (chosen.includes(e) ? -Infinity : v));
        const best = topkIdx(cand, 1)[0]!;
        const mx = cand[best]!;
        const kept = cand.map((v, e) =>
          v !== -Infinity && (mx - logits[e]!) / Math.max(Math.abs(logits[e]!), mx) <= 2 * eps ? v : -Infinity,
        );
        const zs = kept.reduce((a, v) => a + Math.exp(v - mx), 0);
        chosen.push(best);
        w.push(1 / zs);
      }
    } else throw new Error(`reference: unknown model ${model}`);
    ids.push(chosen);
    ws.push(w);
    if (sigmoidRouter) {
      const s = logits.map(sigmoid);
      const z = s.reduce((a, v) => a + v, 0);
      pAll.push(s.map((v) => v / z));
    } else pAll.push(softmaxRow(logits));
  }

  // ---------------- experts
  const swiglu = (g: Float64Array, u: Float64Array): Float64Array => g.map((v, j) => silu(v) * u[j]!);
  const expert = (e: number, xin: number[]): Float64Array => {
    if (model === 'gpt_oss') {
      const gu = vm(get(`${m}experts.gate_up_proj`), e * H * 2 * I, H, 2 * I, xin);
      const gb = get(`${m}experts.gate_up_proj_bias`);
      const limit = first(c, ['swiglu_limit'], 7);
      const h = new Float64Array(I);
      for (let j = 0; j < I; j++) {
        const gate = Math.min(gu[2 * j]! + gb[e * 2 * I + 2 * j]!, limit);
        const up = Math.min(Math.max(gu[2 * j + 1]! + gb[e * 2 * I + 2 * j + 1]!, -limit), limit);
        h[j] = (up + 1) * (gate * sigmoid(1.702 * gate));
      }
      const out = vm(get(`${m}experts.down_proj`), e * I * H, I, H, h);
      const db = get(`${m}experts.down_proj_bias`);
      return out.map((v, o) => v + db[e * H + o]!);
    }
    if (model === 'dbrx') {
      const off = e * I * H;
      const h = swiglu(mv(get(`${m}experts.mlp.w1`), off, I, H, xin), mv(get(`${m}experts.mlp.v1`), off, I, H, xin));
      return vm(get(`${m}experts.mlp.w2`), off, I, H, h);
    }
    if (model === 'llama4_text') {
      const gu = vm(get(`${m}experts.gate_up_proj`), e * H * 2 * I, H, 2 * I, xin);
      return vm(get(`${m}experts.down_proj`), e * I * H, I, H, swiglu(gu.slice(0, I), gu.slice(I)));
    }
    if (model === 'granitemoe' || format === 'fused') {
      const [gk, dk] =
        model === 'granitemoe'
          ? [`${m}input_linear.weight`, `${m}output_linear.weight`]
          : [`${m}experts.gate_up_proj`, `${m}experts.down_proj`];
      const gu = mv(get(gk), e * 2 * I * H, 2 * I, H, xin); // gate rows first
      return mv(get(dk), e * H * I, H, I, swiglu(gu.slice(0, I), gu.slice(I)));
    }
    const [g, u, d] = model === 'mixtral' || model === 'phimoe' ? ['w1', 'w3', 'w2'] : ['gate_proj', 'up_proj', 'down_proj'];
    const ek = (n: string) => `${m}experts.${e}.${n}.weight`;
    return mv(get(ek(d)), 0, H, I, swiglu(mv(get(ek(g)), 0, I, H, xin), mv(get(ek(u)), 0, I, H, xin)));
  };
  const sharedName = {
    qwen2_moe: 'shared_expert',
    deepseek_v2: 'shared_experts',
    deepseek_v3: 'shared_experts',
    llama4_text: 'shared_expert',
  }[model];
  const sharedW = sharedName && t.has(`${m}${sharedName}.gate_proj.weight`) ? t.get(`${m}${sharedName}.gate_proj.weight`)!.shape[0]! : 0;

  const y = new Float64Array(T * H);
  for (let tt = 0; tt < T; tt++) {
    const xt = Array.from({ length: H }, (_, i) => x[tt * H + i]!);
    ids[tt]!.forEach((e, k) => {
      const w = ws[tt]![k]!;
      // Llama-4 scales the expert INPUT by the score; the others scale the output
      const out =
        model === 'llama4_text'
          ? expert(
              e,
              xt.map((v) => v * w),
            )
          : expert(e, xt).map((v) => v * w);
      out.forEach((v, o) => (y[tt * H + o]! += v));
    });
    if (sharedW > 0) {
      const sk = (n: string) => get(`${m}${sharedName}.${n}.weight`);
      let out = mv(sk('down_proj'), 0, H, sharedW, swiglu(mv(sk('gate_proj'), 0, sharedW, H, xt), mv(sk('up_proj'), 0, sharedW, H, xt)));
      if (model === 'qwen2_moe') {
        const gate = sigmoid(mv(get(`${m}shared_expert_gate.weight`), 0, 1, H, xt)[0]!);
        out = out.map((v) => v * gate);
      }
      out.forEach((v, o) => (y[tt * H + o]! += v));
    }
  }

  // ---------------- aux losses
  const counts = new Array<number>(E).fill(0);
  ids.flat().forEach((e) => counts[e]!++);
  let lb = 0;
  for (let e = 0; e < E; e++) lb += (counts[e]! / T) * (pAll.reduce((a, pr) => a + pr[e]!, 0) / T);
  lb *= E;
  const z =
    logitsAll.reduce((a, l) => {
      const mx = Math.max(...l);
      const lse = mx + Math.log(l.reduce((s, v) => s + Math.exp(v - mx), 0));
      return a + lse * lse;
    }, 0) / T;
  return { y, ids, w: ws, lb, z };
}
