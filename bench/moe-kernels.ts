// Micro-benchmark of the fused MoE grouped GEMMs on the bench configs' shapes (A/B work on
// native/moe*.c): node --import tsx bench/moe-kernels.ts <config> [iters] [--cold] [--fresh-output] [--bf16] [--rows=R]
// Prints ms per call and GFLOP/s of: the gated first GEMM (x · [W_gate W_up] with SwiGLU),
// first GEMM alone (gathered x · W_gateᵀ), down GEMM, dyh GEMM (dY · W_down), dx GEMM
// (dgu · W_gate), and the two weight-gradient GEMMs.
// --rows=R times the GEMMs over R sorted rows (the bf16 node's slices: 1024).
// --bf16 passes every A / B operand as bf16 bit patterns (Uint16Array; the outputs stay f32), as
// the bf16 experts node does: the AVX512_BF16 pair kernel where the CPU has it (moe_bf16.h).
// Beside the wall time, the process CPU time per call (all threads) is printed: steadier on a
// loaded machine.
// --cold writes over 64 MiB (twice the L3) before each timed call, so the operands come from
// memory as they do inside a training step (whose working set outgrows the caches), which
// reproduces the rate the step's profile shows (docs/performance.md: bench/moe-kernels.ts: --cold).
// --fresh-output gives the weight-gradient GEMMs a new output array before each timed call, as a
// training step's new gradients are: its pages are faulted in inside the call unless the addon's
// malloc policy (native/runtime/malloc_policy.c) hands back a freed block
// (docs/performance.md: bench/moe-kernels.ts: --fresh-output).
import { moeAddonKernels } from '../src/backend/native/moe-addon.js';
import { f32ArrayToBf16 } from '../src/io/half.js';
import { MOE_CONFIGS } from './moe.js';
import { median } from './util.js';

const rowsArg = process.argv.find((a) => a.startsWith('--rows='));
const FLAGS = ['--cold', '--fresh-output', '--bf16', rowsArg];
const args = process.argv.slice(2).filter((a) => !FLAGS.includes(a));
const cold = process.argv.includes('--cold');
const freshOutput = process.argv.includes('--fresh-output');
const bf16 = process.argv.includes('--bf16');
const name = args[0] ?? 'ct-moe';
const iters = Number(args[1] ?? 5);
const c = MOE_CONFIGS[name]!;
const k = moeAddonKernels()!;
const { dModel: H, dFf: I, experts: E, topK: K, tokens: T } = c;
// --rows=R: R sorted rows instead of all T·K (the bf16 node's GEMMs run on slices of 1024 rows)
const S = rowsArg ? Math.min(T * K, Number(rowsArg.slice(7))) : T * K;
const seg = new Int32Array(E + 1);
for (let e = 0; e <= E; e++) seg[e] = Math.round((S * e) / E);
const rowTok = new Int32Array(S);
for (let r = 0; r < S; r++) rowTok[r] = (r * 7919) % T;
const rnd = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37));
/** An operand: f32, or its bf16 bit patterns with --bf16 (typed as the kernels' options take it). */
const operand = (n: number) => (bf16 ? (f32ArrayToBf16(rnd(n)) as unknown as Float32Array) : rnd(n));
const x = operand(T * H),
  wg = operand(E * I * H),
  wd = operand(E * H * I),
  gu = rnd(S * 2 * I),
  guIn = bf16 ? operand(S * 2 * I) : gu, // dgu as the dX / wgrad GEMMs read it
  h = rnd(S * I),
  hIn = bf16 ? operand(S * I) : h,
  y = new Float32Array(S * H),
  gy = operand(T * H);
const wu = operand(E * I * H);
// --bf16: the weight gradients written as bf16 (rounded in the GEMM), as the bf16 node takes them
const newWgradOut = () => (bf16 ? (new Uint16Array(E * I * H) as unknown as Float32Array) : new Float32Array(E * I * H));
let dW = newWgradOut();
/** The weight-gradient output: a new array per call with --fresh-output (the last one dropped first). */
const wgradOut = () => {
  if (freshOutput) dW = newWgradOut();
  return dW;
};
const evictBuf = new Float32Array(cold ? 16 << 20 : 0);
/** One write per cache line over evictBuf: the caches then hold it instead of the operands. */
const evictCaches = () => {
  for (let j = 0; j < evictBuf.length; j += 16) evictBuf[j]! += 1;
};
/** label, FLOPs, the call (given its output when the case has an output maker), the output maker */
type Case = [string, number, (out: Float32Array) => void, (() => Float32Array)?];
const cases: Case[] = [
  [
    'gated x·[Wg Wu]',
    4 * S * H * I,
    () =>
      k.moeGemmSwiglu({
        a: x,
        aIdx: rowTok,
        lda: H,
        bGate: wg,
        bUp: wu,
        bTrans: true,
        bExpertStride: I * H,
        ldb: H,
        seg,
        gu,
        ldgu: 2 * I,
        upOff: I,
        h,
        i: I,
        k: H,
      }),
  ],
  [
    'first x·Wgᵀ',
    2 * S * H * I,
    () =>
      k.moeGemmRows({
        a: x,
        aIdx: rowTok,
        scale: null,
        lda: H,
        b: wg,
        b2: null,
        kSplit: 0,
        bTrans: true,
        bExpertStride: I * H,
        ldb: H,
        seg,
        c: gu,
        ldc: 2 * I,
        n: I,
        k: H,
        accumulate: false,
      }),
  ],
  [
    'down h·Wdᵀ',
    2 * S * H * I,
    () =>
      k.moeGemmRows({
        a: hIn,
        aIdx: null,
        scale: null,
        lda: I,
        b: wd,
        b2: null,
        kSplit: 0,
        bTrans: true,
        bExpertStride: H * I,
        ldb: I,
        seg,
        c: y,
        ldc: H,
        n: H,
        k: I,
        accumulate: false,
      }),
  ],
  [
    'dyh dY·Wd',
    2 * S * H * I,
    () =>
      k.moeGemmRows({
        a: gy,
        aIdx: rowTok,
        scale: null,
        lda: H,
        b: wd,
        b2: null,
        kSplit: 0,
        bTrans: false,
        bExpertStride: H * I,
        ldb: I,
        seg,
        c: h,
        ldc: I,
        n: I,
        k: H,
        accumulate: false,
      }),
  ],
  [
    'dx dgu·Wg',
    2 * S * H * I,
    () =>
      k.moeGemmRows({
        a: guIn,
        aIdx: null,
        scale: null,
        lda: 2 * I,
        b: wg,
        b2: null,
        kSplit: 0,
        bTrans: false,
        bExpertStride: I * H,
        ldb: H,
        seg,
        c: y,
        ldc: H,
        n: H,
        k: I,
        accumulate: false,
      }),
  ],
  [
    'wgrad dWd',
    2 * S * H * I,
    (c) => k.moeGemmWgrad({ a: gy, aIdx: rowTok, scale: null, lda: H, b: hIn, bIdx: null, ldb: I, seg, c, m: H, n: I, accumulate: false }),
    wgradOut,
  ],
  [
    'wgrad dWg',
    2 * S * H * I,
    (c) =>
      k.moeGemmWgrad({ a: guIn, aIdx: null, scale: null, lda: 2 * I, b: x, bIdx: rowTok, ldb: H, seg, c, m: I, n: H, accumulate: false }),
    wgradOut,
  ],
];
// the gated GEMM takes f32 operands only: the bf16 node runs its gate and up GEMMs as rows GEMMs
for (const [label, fl, fn, out = () => dW] of bf16 ? cases.slice(1) : cases) {
  fn(out());
  const ts: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < iters; i++) {
    const c = out();
    evictCaches();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn(c);
    ts.push(performance.now() - t0);
    const dc = process.cpuUsage(c0);
    cpus.push((dc.user + dc.system) / 1000);
  }
  const m = median(ts);
  const cpu = median(cpus);
  console.log(
    `${name}${cold ? ' (cold)' : ''}${freshOutput ? ' (fresh output)' : ''}${bf16 ? ' bf16' : ''} ${label.padEnd(16)} ${m.toFixed(2).padStart(7)} ms  ${(fl / m / 1e6).toFixed(1).padStart(6)} GFLOP/s  ${cpu.toFixed(1).padStart(7)} CPU ms`,
  );
}
