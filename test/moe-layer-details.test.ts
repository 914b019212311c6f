// MoELayer.forwardWithRouting: the routing and the parts forward computed, held to the output
// (y = routed + shared, or OLMo-core's mix), to forward itself, and to the router run on its own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type MoEConfigInput, moeConfig } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { route } from '../src/moe/router.js';
import { fromArray } from '../src/ops/creation.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Generator } from '../src/tensor/random.js';
import { assertClose } from './helpers/gradcheck.js';

const CASES: { name: string; input: MoEConfigInput; mix: (routed: number, shared: number) => number }[] = [
  { name: 'shared expert added', input: { hiddenSize: 8, router: { numExperts: 4, topK: 2 }, experts: { intermediateSize: 6 }, shared: { intermediateSize: 4 } }, mix: (r, s) => r + s },
  { name: "OLMo-core's mix, capacity drops", input: { hiddenSize: 8, router: { numExperts: 4, topK: 3 }, experts: { intermediateSize: 6 }, shared: { intermediateSize: 4, mix: 'olmo' }, dispatch: { capacityFactor: 0.5, capacityMultiple: 1 } }, mix: (r, s) => s / 4 + (r * 3) / 4 },
];

for (const c of CASES) {
  test(`forwardWithRouting hands out the routing and the parts (${c.name}), f64`, () => {
    const layer = new MoELayer(moeConfig(c.input), { dtype: 'f64', generator: new Generator(1) });
    const gen = new Generator(2);
    const x = fromArray(Float64Array.from({ length: 2 * 5 * 8 }, () => gen.uniform() - 0.5), [2, 5, 8]);
    const d = noGrad(() => layer.forwardWithRouting(x));
    assert.deepEqual(d.y.dataSync(), noGrad(() => layer.forward(x)).dataSync(), 'y is forward');
    const y = d.y.dataSync(), routed = d.routed.dataSync(), shared = d.shared!.dataSync();
    assertClose(y, Array.from(routed, (r, i) => c.mix(r, shared[i]!)), 1e-14, 1e-12, 'y from routed and shared');
    const alone = noGrad(() => route(fromArray(x.dataSync(), [10, 8]), layer.routerWeight, null, layer.cfg.router));
    assert.deepEqual(d.routing.topkIds.dataSync(), alone.topkIds.dataSync(), 'top-k ids');
    assertClose(d.routing.topkWeights.dataSync(), alone.topkWeights.dataSync(), 1e-14, 1e-12, 'top-k weights');
    assertClose(d.routing.logits.dataSync(), alone.logits.dataSync(), 1e-14, 1e-12, 'logits');
    assert.equal(d.droppedSlots, Math.round(d.metrics.droppedFraction * 10 * layer.cfg.router.topK));
    assert.deepEqual([...d.metrics.tokensPerExpert], [...(d.routing.counts.dataSync() as Int32Array)]);
  });
}
