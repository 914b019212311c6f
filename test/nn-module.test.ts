import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { readSafetensors, writeSafetensors } from '../src/io/index.js';
import {
  GPT,
  LayerNorm,
  Linear,
  Module,
  Parameter,
  Tensor,
  manualSeed,
  safetensorsToStateDict,
  stateDictToSafetensors,
  tensor,
  zeros,
} from '../src/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'moekit-nn-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

class Inner extends Module {
  readonly scale = new Parameter(tensor([1, 2, 3]));
  readonly lin = new Linear(3, 3);
  forward(x: Tensor): Tensor {
    return this.lin.forward(x.mul(this.scale));
  }
}

class Outer extends Module {
  readonly first = new Parameter(zeros([3]));
  readonly notAParam = zeros([5]); // a plain tensor: ignored
  readonly hyper = 3; // ignored
  readonly layers = [new Inner(), new Inner()];
  readonly norm = new LayerNorm(3);
  readonly maybe: Linear | null = null;
  constructor() {
    super();
    this.registerBuffer('counter', tensor([7], { dtype: 'i32' }));
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const l of this.layers) h = l.forward(h);
    return this.norm.forward(h.add(this.first));
  }
}

describe('Module', () => {
  test('Parameter is a leaf that requires grad and keeps the storage', () => {
    const t = tensor([1, 2]);
    const p = new Parameter(t);
    assert.equal(p.storage, t.storage);
    assert.equal(p.requiresGrad, true);
    assert.equal(p.isLeaf, true);
    assert.ok(p instanceof Tensor);
    assert.throws(() => new Parameter(tensor([1], { dtype: 'i32' })), /only floating tensors/);
    assert.equal(new Parameter(tensor([1], { dtype: 'i32' }), false).requiresGrad, false);
  });

  test('namedParameters: dotted names in property definition order', () => {
    const m = new Outer();
    assert.deepEqual(
      m.namedParameters().map(([n]) => n),
      [
        'first',
        'layers.0.scale',
        'layers.0.lin.weight',
        'layers.0.lin.bias',
        'layers.1.scale',
        'layers.1.lin.weight',
        'layers.1.lin.bias',
        'norm.weight',
        'norm.bias',
      ],
    );
    assert.equal(m.parameters().length, 9);
    assert.equal(m.numParameters(), 3 + 2 * (3 + 9 + 3) + 6);
    assert.deepEqual(
      [...m.namedModules()].map(([n]) => n),
      ['', 'layers.0', 'layers.0.lin', 'layers.1', 'layers.1.lin', 'norm'],
    );
    assert.equal(m.children().length, 3);
    assert.deepEqual(Object.keys(m.stateDict()), [...m.namedParameters().map(([n]) => n), 'counter']);
  });

  test('GPT parameter names follow the PyTorch convention', () => {
    const g = new GPT({ vocabSize: 10, seqLen: 4, dModel: 8, nHead: 2, nLayer: 2 });
    const names = g.namedParameters().map(([n]) => n);
    assert.equal(names[0], 'wte.weight');
    assert.equal(names[1], 'wpe.weight');
    assert.ok(names.includes('blocks.0.attn.qkv.weight'));
    assert.ok(names.includes('blocks.1.ffn.proj.bias'));
    assert.deepEqual(names.slice(-2), ['lnF.weight', 'lnF.bias']);
    assert.equal(names.indexOf('blocks.0.ln1.weight') < names.indexOf('blocks.1.ln1.weight'), true);
  });

  test('a shared parameter is listed once', () => {
    class Tied extends Module {
      readonly a = new Linear(2, 2);
      readonly b = new Linear(2, 2);
      constructor() {
        super();
        (this.b as { weight: Parameter }).weight = this.a.weight;
      }
    }
    const t = new Tied();
    assert.deepEqual(
      t.namedParameters().map(([n]) => n),
      ['a.weight', 'a.bias', 'b.bias'],
    );
  });

  test('train / eval reach every descendant; zeroGrad; apply order', () => {
    const m = new Outer();
    m.eval();
    assert.ok(m.modules().every((x) => !x.training));
    m.train();
    assert.ok(m.modules().every((x) => x.training));
    const y = m.forward(tensor([[1, 2, 3]])).sum();
    y.backward();
    assert.ok(m.parameters().every((p) => p.grad !== null));
    m.zeroGrad();
    assert.ok(m.parameters().every((p) => p.grad === null));
    const seen: string[] = [];
    m.apply((x) => seen.push(x.constructor.name));
    assert.deepEqual(seen, ['Linear', 'Inner', 'Linear', 'Inner', 'LayerNorm', 'Outer']);
  });

  test('state dict round trip through safetensors gives the same outputs', async () => {
    manualSeed(1);
    const a = new GPT({ vocabSize: 16, seqLen: 8, dModel: 8, nHead: 2, nLayer: 2 });
    manualSeed(2);
    const b = new GPT({ vocabSize: 16, seqLen: 8, dModel: 8, nHead: 2, nLayer: 2 });
    const ids = tensor(
      [
        [1, 2, 3, 4, 5],
        [9, 8, 7, 6, 15],
      ],
      { dtype: 'i32' },
    );
    const ya = a.forward(ids).dataSync();
    assert.notDeepEqual([...b.forward(ids).dataSync()], [...ya]);
    const file = path.join(tmp, 'gpt.safetensors');
    await writeSafetensors(file, stateDictToSafetensors(a.stateDict()));
    const loaded = safetensorsToStateDict((await readSafetensors(file)).tensors);
    const before = b.parameters();
    const r = b.loadStateDict(loaded);
    assert.deepEqual(r, { missingKeys: [], unexpectedKeys: [] });
    assert.deepEqual(b.parameters(), before, 'the same Parameter objects stay in place');
    assert.deepEqual([...b.forward(ids).dataSync()], [...ya]);
  });

  test('buffers are saved and loaded', () => {
    const m = new Outer();
    const sd = m.stateDict();
    sd['counter'] = tensor([42], { dtype: 'i32' });
    m.loadStateDict(sd);
    assert.equal(m.buffer('counter').item(), 42);
  });

  test('loadStateDict errors name the keys and both shapes', () => {
    const m = new Outer();
    const sd = m.stateDict();
    delete sd['norm.bias'];
    sd['extra.weight'] = zeros([1]);
    assert.throws(() => m.loadStateDict(sd), /missing keys: 'norm\.bias'; unexpected keys: 'extra\.weight'/);
    const r = m.loadStateDict(sd, { strict: false });
    assert.deepEqual(r, { missingKeys: ['norm.bias'], unexpectedKeys: ['extra.weight'] });

    const bad = m.stateDict();
    bad['layers.1.lin.weight'] = zeros([3, 2]);
    assert.throws(
      () => m.loadStateDict(bad, { strict: false }),
      /size mismatch for 'layers\.1\.lin\.weight': checkpoint has shape \[3, 2\], the module has \[3, 3\]/,
    );
  });

  test('loadStateDict casts to the parameter dtype', () => {
    const m = new Linear(2, 1);
    m.loadStateDict({ weight: tensor([[0.5, 0.25]], { dtype: 'f64' }), bias: tensor([1], { dtype: 'f64' }) });
    assert.equal(m.weight.dtype, 'f32');
    assert.deepEqual([...m.forward(tensor([[2, 4]])).dataSync()], [3]);
  });
});
