// Profile of one whole training step of a CT-MoE preset (bench/moe.ts ctmoeTrainStep; tiny unless --preset):
// time per phase (forward + loss, backward, gradient clipping, AdamW), per native call (count and
// time, all calls on the one addon object, as bench/moe-profile.ts does for one MoE layer), per
// backward node by name, and what is left: JavaScript (the engine's own per-op work) while the
// pool's workers wait. For work on the small ops around the experts (docs/performance.md).
// --cpu times with this process's CPU time (user + system, all threads) instead of wall time:
// on a host loaded by other work, with MOEKIT_NUM_THREADS=1, it counts only our own work.
// Each step runs in a tidy scope (src/tensor/scope.ts), as the trainer's do; --no-tidy leaves
// its storages to the GC (the step before scopes existed).
//   node --import tsx bench/train-profile.ts [steps] [--preset tiny|small|paper] [--json] [--cpu] [--no-tidy]
import { loadNativeAddon } from '../src/backend/native/addon.js';
import { openScope, useThroughputGc } from '../src/index.js';
import type { GradNode } from '../src/tensor/autograd.js';
import type { Tensor } from '../src/tensor/tensor.js';
import type { PresetName } from '../src/experiments/ctmoe/index.js';
import { ctmoeTrainStep } from './moe.js';
import { table, warmUp } from './util.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const cpu = args.includes('--cpu');
const tidyOn = !args.includes('--no-tidy');
const now = cpu
  ? () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    }
  : () => performance.now();
const presetAt = args.indexOf('--preset');
const preset = (presetAt >= 0 ? args[presetAt + 1] : 'tiny') as PresetName;
const steps = Number(args.find((a, i) => !a.startsWith('--') && i !== presetAt + 1) ?? 20);
if (!Number.isInteger(steps) || steps < 1) throw new Error(`steps: '${steps}' is not a positive integer`);

interface Acc {
  ms: number;
  calls: number;
}
const native = new Map<string, Acc>();
const nodes = new Map<string, Acc>();
let recording = false;
function add(m: Map<string, Acc>, key: string, ms: number): void {
  if (!recording) return;
  const a = m.get(key) ?? { ms: 0, calls: 0 };
  a.ms += ms;
  a.calls++;
  m.set(key, a);
}

// Every native call, timed where it runs (a nested call is not counted twice: none nest).
const addon = loadNativeAddon().addon as unknown as Record<string, (...a: unknown[]) => unknown> | null;
if (!addon) throw new Error('train-profile: the native addon did not load');
for (const fn of Object.keys(addon).filter((name) => typeof addon[name] === 'function')) {
  const orig = addon[fn]!.bind(addon);
  addon[fn] = (...a: unknown[]) => {
    const t0 = now();
    const r = orig(...a);
    add(native, fn, now() - t0);
    return r;
  };
}

/** Wraps the backward of every node reachable from root, so each is timed under its name. */
function timeBackwardNodes(root: Tensor): void {
  const seen = new Set<GradNode>();
  const stack: Tensor[] = [root];
  while (stack.length > 0) {
    const node = stack.pop()!.gradFn;
    if (!node || seen.has(node)) continue;
    seen.add(node);
    const orig = node.backward.bind(node);
    (node as { backward: GradNode['backward'] }).backward = (g) => {
      const t0 = now();
      const r = orig(g);
      add(nodes, node.name, now() - t0);
      return r;
    };
    stack.push(...node.inputs);
  }
}

useThroughputGc();
const { phases, model, optimizer } = ctmoeTrainStep(preset);
const phaseMs = { forward: 0, backward: 0, clip: 0, optimizer: 0 };
function step(): void {
  const scope = tidyOn ? openScope() : null;
  let t0 = now();
  const total = phases.forward();
  timeBackwardNodes(total);
  let t1 = now();
  phaseMs.forward += recording ? t1 - t0 : 0;
  t0 = t1;
  phases.backward(total);
  t1 = now();
  phaseMs.backward += recording ? t1 - t0 : 0;
  t0 = t1;
  phases.clip();
  t1 = now();
  phaseMs.clip += recording ? t1 - t0 : 0;
  t0 = t1;
  phases.optimizer(total);
  model.zeroGrad(); // as the trainer: the spent gradients die with the step
  scope?.close(undefined, model, optimizer);
  phaseMs.optimizer += recording ? now() - t0 : 0;
}
const threads = addon.getNumThreads!() as number;
warmUp(step);
recording = true;
for (let i = 0; i < steps; i++) step();

const per = (ms: number) => (ms / steps).toFixed(2);
const stepMs = Object.values(phaseMs).reduce((a, b) => a + b, 0);
const nativeMs = [...native.values()].reduce((a, b) => a + b.ms, 0);
const nativeCalls = [...native.values()].reduce((a, b) => a + b.calls, 0);
const sorted = (m: Map<string, Acc>) => [...m].sort((p, q) => q[1].ms - p[1].ms);
if (json) {
  const out = {
    bench: 'train-profile',
    preset,
    steps,
    clock: cpu ? 'cpu' : 'wall',
    tidy: tidyOn,
    threads,
    step_ms: +(stepMs / steps).toFixed(2),
    phases_ms: Object.fromEntries(Object.entries(phaseMs).map(([k, v]) => [k, +(v / steps).toFixed(2)])),
    native_ms: +(nativeMs / steps).toFixed(2),
    native_calls: nativeCalls / steps,
    js_ms: +((stepMs - nativeMs) / steps).toFixed(2),
    native: Object.fromEntries(sorted(native).map(([k, a]) => [k, { ms: +(a.ms / steps).toFixed(3), calls: a.calls / steps }])),
    backward_nodes: Object.fromEntries(sorted(nodes).map(([k, a]) => [k, { ms: +(a.ms / steps).toFixed(3), calls: a.calls / steps }])),
  };
  console.log(JSON.stringify(out));
} else {
  console.log(
    `CT-MoE ${preset} training step, mean of ${steps} (${cpu ? 'CPU' : 'wall'} time, ${threads} threads${tidyOn ? '' : ', --no-tidy'}): ${per(stepMs)} ms = ${Object.entries(
      phaseMs,
    )
      .map(([k, v]) => `${k} ${per(v)}`)
      .join(' + ')}; native calls ${per(nativeMs)} ms (${nativeCalls / steps} calls), JavaScript ${per(stepMs - nativeMs)} ms`,
  );
  const rows = (m: Map<string, Acc>) =>
    sorted(m).map(([k, a]) => [
      k,
      per(a.ms),
      String(a.calls / steps),
      ((1000 * a.ms) / a.calls).toFixed(1),
      ((100 * a.ms) / stepMs).toFixed(1),
    ]);
  console.log(`\nnative calls per step\n${table(['call', 'ms', 'calls', 'us/call', '% step'], rows(native))}`);
  console.log(`\nbackward nodes per step (native calls included)\n${table(['node', 'ms', 'calls', 'us/call', '% step'], rows(nodes))}`);
}
