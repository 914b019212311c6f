// Micro-benchmark of the fused MoE grouped GEMMs on the bench configs' shapes (A/B work on
// native/moe*.c): node --import tsx bench/moe-kernels.ts <config> [iters] [--cold]
// Prints ms per call and GFLOP/s of: the gated first GEMM (x · [W_gate W_up] with SwiGLU),
// first GEMM alone (gathered x · W_gateᵀ), down GEMM, dyh GEMM (dY · W_down), dx GEMM
// (dgu · W_gate), and the two weight-gradient GEMMs.
// --cold writes over 64 MiB (twice the L3) before each timed call, so the operands come from
// memory as they do inside a training step (whose working set outgrows the caches), which
// reproduces the rate the step's profile shows (docs/performance.md: bench/moe-kernels.ts: --cold).
import { moeAddonKernels } from '../src/backend/native/moe-addon.js';
import { MOE_CONFIGS } from './moe.js';
import { median } from './util.js';

const args = process.argv.slice(2).filter((a) => a !== '--cold');
const cold = process.argv.includes('--cold');
const name = args[0] ?? 'ct-moe';
const iters = Number(args[1] ?? 5);
const c = MOE_CONFIGS[name]!;
const k = moeAddonKernels()!;
const { dModel: H, dFf: I, experts: E, topK: K, tokens: T } = c;
const S = T * K;
const seg = new Int32Array(E + 1);
for (let e = 0; e <= E; e++) seg[e] = Math.round((S * e) / E);
const rowTok = new Int32Array(S);
for (let r = 0; r < S; r++) rowTok[r] = (r * 7919) % T;
const rnd = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37));
const x = rnd(T * H),
  wg = rnd(E * I * H),
  wd = rnd(E * H * I),
  gu = rnd(S * 2 * I),
  h = rnd(S * I),
  y = new Float32Array(S * H),
  gy = rnd(T * H);
const wu = rnd(E * I * H);
const dW = new Float32Array(E * I * H);
const evictBuf = new Float32Array(cold ? 16 << 20 : 0);
/** One write per cache line over evictBuf: the caches then hold it instead of the operands. */
const evictCaches = () => {
  for (let j = 0; j < evictBuf.length; j += 16) evictBuf[j]! += 1;
};
const cases: [string, number, () => void][] = [
  ['gated x·[Wg Wu]', 4 * S * H * I, () => k.moeGemmSwiglu(x, rowTok, H, wg, wu, true, I * H, H, seg, gu, 2 * I, I, h, I, H)],
  ['first x·Wgᵀ', 2 * S * H * I, () => k.moeGemmRows(x, rowTok, null, H, wg, true, I * H, H, seg, gu, 2 * I, I, H, false)],
  ['down h·Wdᵀ', 2 * S * H * I, () => k.moeGemmRows(h, null, null, I, wd, true, H * I, I, seg, y, H, H, I, false)],
  ['dyh dY·Wd', 2 * S * H * I, () => k.moeGemmRows(gy, rowTok, null, H, wd, false, H * I, I, seg, h, I, I, H, false)],
  ['dx dgu·Wg', 2 * S * H * I, () => k.moeGemmRows(gu, null, null, 2 * I, wg, false, I * H, H, seg, y, H, H, I, false)],
  ['wgrad dWd', 2 * S * H * I, () => k.moeGemmWgrad(gy, rowTok, null, H, h, null, I, seg, dW, H, I, false)],
  ['wgrad dWg', 2 * S * H * I, () => k.moeGemmWgrad(gu, null, null, 2 * I, x, rowTok, H, seg, dW, I, H, false)],
];
for (const [label, fl, fn] of cases) {
  fn();
  const ts: number[] = [];
  for (let i = 0; i < iters; i++) {
    evictCaches();
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  const m = median(ts);
  console.log(
    `${name}${cold ? ' (cold)' : ''} ${label.padEnd(16)} ${m.toFixed(2).padStart(7)} ms  ${(fl / m / 1e6).toFixed(1).padStart(6)} GFLOP/s`,
  );
}
