// The parallel execution plan (src/moe/execution/parallel.ts, plan.ts's 'parallel' path) in one
// process: a layer under an EP / TP block plans 'parallel' with a summary naming the ranks, the
// dispatcher and the paths its router and local experts take on this backend (the kernels on
// native, the composition on reference); the plan's refusals; EP over one rank (the all-to-alls
// of a one-process communicator) equals the single-process layer on each CPU backend. The
// multi-rank parity is test/dist-blocks.test.ts's (mpirun).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { availableBackends, setBackend } from '../src/backend/index.js';
import { Communicator } from '../src/dist/communicator.js';
import { buildMoeBlock } from '../src/dist/builders.js';
import { ExpertParallelExecution } from '../src/dist/ep-execution.js';
import { type MoEConfigInput, parseMoEConfig } from '../src/moe/config.js';
import { planForConfig } from '../src/moe/execution/plan.js';
import { MoELayer } from '../src/moe/layer.js';
import { randn } from '../src/ops/creation.js';
import { mul } from '../src/ops/elementwise.js';
import { sum } from '../src/ops/reduce.js';
import { Generator } from '../src/tensor/random.js';
import { assertClose } from './helpers/gradcheck.js';
import { webgpuOrSkip } from './helpers/webgpu.js';

const hasNative = availableBackends().includes('native');
const cfgOf = (extra: Partial<MoEConfigInput> = {}) =>
  parseMoEConfig({
    hiddenSize: 16,
    router: { numExperts: 8, topK: 2 },
    experts: { intermediateSize: 24 },
    losses: { lbWeight: 0.01, zLossWeight: 0.001 },
    ...extra,
  });

describe('the parallel plan on the reference backend', () => {
  test('EP and TP specs: the summary names the ranks, local experts, dispatcher and the composition with why', () => {
    setBackend('reference');
    const why = "the reference backend's MoE kernels are not faster";
    assert.equal(
      planForConfig(cfgOf(), setBackend('reference'), 'f32', { kind: 'ep', ranks: 2, localExperts: 4 }).summary,
      `expert parallel over 2 ranks (4 local experts), naive all-to-all dispatcher, round-robin token shards, outputs all-reduced (Diffulex); router: composition (${why}); local experts: composition (${why})`,
    );
    const tp = planForConfig(cfgOf(), setBackend('reference'), 'f32', { kind: 'tp', ranks: 4, localExperts: 2 });
    assert.equal(tp.path, 'parallel');
    assert.match(
      tp.summary,
      /^tensor parallel over 4 ranks \(2 local experts\), every rank routes all tokens, partial outputs all-reduced; router: composition/,
    );
  });

  test("a layer under an EP block plans 'parallel' (local sharding named), and back to its own plan without it; a refused config leaves the layer as it was", () => {
    setBackend('reference');
    const layer = new MoELayer(cfgOf());
    assert.equal(layer.executionPlan.path, 'reference');
    buildMoeBlock('ep', layer, { sharding: 'local' });
    assert.equal(layer.executionPlan.path, 'parallel');
    assert.match(
      layer.executionPlan.summary,
      /^expert parallel over 1 rank \(8 local experts\), naive all-to-all dispatcher, each rank's own batch \(OLMo-core\); /,
    );
    layer.parallelize(null);
    assert.equal(layer.executionPlan.path, 'reference');

    const choice = new MoELayer(
      parseMoEConfig({ hiddenSize: 16, router: { numExperts: 8, topK: 2, kind: 'expert-choice' }, experts: { intermediateSize: 24 } }),
    );
    assert.throws(
      () => choice.parallelize(new ExpertParallelExecution(choice, Communicator.single())),
      /^Error: ep MoE block: router.kind 'expert-choice' is not supported across ranks \(only 'token-choice'\)$/,
    );
    assert.equal(choice.executionPlan.path, 'reference');
    assert.throws(
      () =>
        planForConfig(cfgOf({ router: { numExperts: 8, topK: 2, jitterEps: 0.01 } }), setBackend('reference'), 'f32', {
          kind: 'tp',
          ranks: 2,
          localExperts: 4,
        }),
      /^Error: tp MoE block: router.jitterEps > 0 would give each rank different routing/,
    );
    assert.throws(
      () =>
        planForConfig(cfgOf({ losses: { lbWeight: 0.01, lbGranularity: 'instance' } }), setBackend('reference'), 'f32', {
          kind: 'ep',
          ranks: 2,
          localExperts: 4,
        }),
      /^Error: ep MoE block: losses.lbGranularity 'instance' is not supported across ranks/,
    );
  });

  test('`moekit info --layer ct-moe --ep 2` prints the parallel plan; --tp without --layer is a one-line error', () => {
    const run = (args: string[]) =>
      execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'info', ...args], {
        encoding: 'utf8',
        env: { ...process.env, MOEKIT_BACKEND: 'reference' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    assert.match(
      run(['--layer', 'ct-moe', '--ep', '2']),
      /\nmoekit: MoE layer 'ct-moe': expert parallel over 2 ranks \(4 local experts\), naive all-to-all dispatcher, round-robin token shards, outputs all-reduced \(Diffulex\); router: composition/,
    );
    assert.throws(() => run(['--tp', '2']), /error: --tp needs --layer \(the layer whose parallel plan to print\)/);
  });
});

test('the parallel plan on the native backend: router pass kernel and the experts node for the local experts', {
  skip: !hasNative && 'native addon not built',
}, () => {
  const plan = planForConfig(cfgOf(), setBackend('native'), 'f32', { kind: 'ep', ranks: 2, localExperts: 4 });
  assert.equal(plan.path, 'parallel');
  assert.ok(plan.routerKernel && plan.expertsKernel && plan.kernels);
  assert.match(
    plan.summary,
    /; router: kernel on the native backend, f32; local experts: one SwiGLU kernel node on the native backend, f32$/,
  );
  // weights on the input: the experts node does not take them, the composition does
  const onInput = planForConfig(cfgOf({ dispatch: { weightsOn: 'input' } }), setBackend('native'), 'f32', {
    kind: 'ep',
    ranks: 2,
    localExperts: 4,
  });
  assert.match(onInput.summary, /; local experts: composition \(weights on the input\)$/);
});

for (const backend of ['reference', ...(hasNative ? ['native' as const] : [])] as const) {
  test(`EP over one rank through the plan equals the single-process layer on the ${backend} backend (capacity drops, shared expert: output, input and parameter gradients, metrics)`, () => {
    setBackend(backend);
    const cfg = cfgOf({
      dispatch: { capacityFactor: 0.5, capacityMultiple: 1 },
      shared: { intermediateSize: 20, gate: 'sigmoid', mix: 'olmo' },
    });
    const single = new MoELayer(cfg, { generator: new Generator(3) });
    const parallel = new MoELayer(cfg, { generator: new Generator(3) });
    const block = buildMoeBlock('ep', parallel);
    assert.equal(parallel.executionPlan.path, 'parallel');
    single.train();
    block.train();
    const g = new Generator(9);
    const x = randn([12, 16], { generator: g });
    const seed = randn([12, 16], { generator: g });
    const run = (f: (x: typeof seed) => typeof seed) => {
      const xi = x.detach().requiresGrad_();
      const y = f(xi);
      sum(mul(y, seed)).backward();
      return { y: y.dataSync(), dx: xi.grad!.dataSync() };
    };
    const want = run((v) => single.forward(v));
    const got = run((v) => block.forward(v));
    assertClose(got.y, want.y, 1e-5, 1e-5);
    assertClose(got.dx, want.dx, 1e-5, 1e-5);
    const params = new Map(parallel.namedParameters());
    for (const [name, p] of single.namedParameters()) assertClose(params.get(name)!.grad!.dataSync(), p.grad!.dataSync(), 1e-5, 1e-5);
    assert.ok(single.lastMetrics!.droppedFraction > 0, 'the case drops slots');
    assert.deepEqual(parallel.lastMetrics!.tokensPerExpert, single.lastMetrics!.tokensPerExpert);
    assert.equal(parallel.lastMetrics!.droppedFraction, single.lastMetrics!.droppedFraction);
    assertClose(
      [parallel.lastMetrics!.lbLoss!, parallel.lastMetrics!.zLoss!],
      [single.lastMetrics!.lbLoss!, single.lastMetrics!.zLoss!],
      1e-6,
      1e-6,
    );
  });
}

const gpu = await webgpuOrSkip('the parallel plan on the webgpu backend is a one-line refusal');
if (gpu)
  test('the parallel plan on the webgpu backend is a one-line refusal (routing stays on the device; the dispatcher reads it on the host)', () => {
    assert.throws(
      () => planForConfig(cfgOf(), gpu, 'f32', { kind: 'ep', ranks: 2, localExperts: 4 }),
      /^Error: ep MoE block: the webgpu backend keeps routing on the device, and the all-to-all dispatcher reads it on the host \(run it on the native or reference backend\)$/,
    );
  });
