// Stage profile of one MoE layer (fwd+bwd): time spent in each native call (the fused expert and
// router kernels and the engine's own, all on the one addon object) vs JavaScript, which runs
// alone while the pool's workers wait; a batch (moeBatchBegin .. moeBatchRun) or a row fusion
// (moeFuseBegin .. moeFuseRun) is one line naming the kernels it ran.
// node --import tsx bench/moe-profile.ts <config> [iters] [f32|bf16]  (bf16: the layer built in bf16, dtype config)
import { loadNativeAddon } from '../src/backend/native/addon.js';
import { randn } from '../src/index.js';
import { benchMoeLayer } from './moe-layer.js';
import { MOE_CONFIGS } from './moe.js';

const name = process.argv[2] ?? 'small';
const iters = Number(process.argv[3] ?? 5);
const dtype = (process.argv[4] ?? 'f32') as 'f32' | 'bf16';
const c = MOE_CONFIGS[name]!;
const k = loadNativeAddon().addon as unknown as Record<string, (...a: unknown[]) => unknown> | null;
const acc = new Map<string, number>();
// Between moeBatchBegin and moeBatchRun (moeFuseBegin and moeFuseRun) the kernel calls only
// queue: their time is the run's, reported under one key naming them.
const runs: Record<string, string> = { moeBatchBegin: 'moeBatchRun', moeFuseBegin: 'moeFuseRun' };
let queued: string[] | null = null;
if (k) {
  for (const fn of Object.keys(k).filter((name) => typeof k[name] === 'function')) {
    const orig = k[fn]!.bind(k);
    k[fn] = (...a: unknown[]) => {
      const o = a[0] as Record<string, unknown> | undefined;
      const key = fn === 'moeGemmRows' ? `${fn}(k=${o!.k},n=${o!.n})` : fn === 'moeGemmWgrad' ? `${fn}(m=${o!.m},n=${o!.n})` : fn;
      const isRun = Object.values(runs).includes(fn);
      if (runs[fn]) queued = [];
      else if (queued && !isRun) queued.push(key);
      else {
        const label = isRun ? `${fn === 'moeFuseRun' ? 'rows fused' : 'batch'}: ${queued!.join(' + ')}` : key;
        const t0 = performance.now();
        const result = orig(...a);
        acc.set(label, (acc.get(label) ?? 0) + performance.now() - t0);
        if (isRun) queued = null;
        return result;
      }
      return orig(...a);
    };
  }
}
const layer = benchMoeLayer(c, dtype);
const x = randn([c.tokens, c.dModel]).to(dtype);
const dy = randn([c.tokens, c.dModel]).to(dtype);
const step = () => {
  const t0 = performance.now();
  layer.zeroGrad();
  const xi = x.detach().requiresGrad_();
  const y = layer.forward(xi);
  const t1 = performance.now();
  y.backward(dy);
  return [t1 - t0, performance.now() - t1] as const;
};
step();
acc.clear();
let f = 0,
  b = 0;
for (let i = 0; i < iters; i++) {
  const [a, bb] = step();
  f += a;
  b += bb;
}
const tot = f + b;
console.log(`${name} ${dtype}: fwd ${(f / iters).toFixed(1)} ms, bwd ${(b / iters).toFixed(1)} ms per step`);
let kern = 0;
for (const [key, v] of [...acc].sort((p, q) => q[1] - p[1])) {
  kern += v;
  console.log(`  ${key.padEnd(40)} ${(v / iters).toFixed(2)} ms  ${((100 * v) / tot).toFixed(1)}%`);
}
console.log(
  `  ${'(JavaScript: outside native calls)'.padEnd(40)} ${((tot - kern) / iters).toFixed(2)} ms  ${((100 * (tot - kern)) / tot).toFixed(1)}%`,
);
