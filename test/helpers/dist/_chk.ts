import { Generator } from '../../../src/tensor/random.js';
import { MoELayer } from '../../../src/moe/layer.js';
import { parseMoEConfig } from '../../../src/moe/config.js';
const cfg = parseMoEConfig({ hiddenSize: 4, router: { numExperts: 4, topK: 2 }, experts: { intermediateSize: 3 } });
const a = new MoELayer(cfg, { generator: new Generator(7) });
const b = new MoELayer(cfg, { generator: new Generator(7), expertShard: { first: 0, count: 2 } });
console.log(Array.from(a.experts.downProj.dataSync()).slice(0, 3), Array.from(b.experts.downProj.dataSync()).slice(0, 3), b.experts.numExperts);
