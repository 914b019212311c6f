// The webgpu runtime under the kernels: a collected storage's buffer is reused by the next
// allocation of its size, and a device error (here a shader that does not compile) comes back
// at the next read as an error naming the op.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { openDevice } from '../src/backend/webgpu/device.js';
import { GpuRuntime } from '../src/backend/webgpu/runtime.js';
import { webgpuOrSkip } from './helpers/webgpu.js';

function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

if (await webgpuOrSkip('webgpu runtime')) {
  const opened = await openDevice();
  assert.ok(opened.ok);
  const rt = new GpuRuntime(opened.opened.device);

  test('webgpu runtime: a collected storage returns its buffer to the pool, and the next allocation of that size takes it', async () => {
    let s: ReturnType<GpuRuntime['alloc']> | null = rt.alloc('f32', 1000);
    const buffer = s.buffer;
    s = null;
    // FinalizationRegistry callbacks run after a collection, on a later task
    let again = rt.alloc('f32', 1000);
    for (let i = 0; i < 20 && again.buffer !== buffer; i++) {
      collectGarbage();
      await new Promise((r) => setTimeout(r, 10));
      again = rt.alloc('f32', 1000);
    }
    assert.equal(again.buffer, buffer, 'the collected storage buffer came back');
    assert.notEqual(rt.alloc('f32', 1000).buffer, again.buffer, 'a buffer in use is not handed out twice');
  });

  test('webgpu runtime: a device error surfaces at the next read, naming the op', async () => {
    const out = rt.alloc('f32', 4);
    rt.run('broken kernel (f32[4])', 'this is not WGSL', [out], [4], [], 1);
    await assert.rejects(rt.read(out), /^Error: webgpu: broken kernel \(f32\[4\]\) failed on the device: .*WGSL/);
    // the error is reported once; the device keeps working
    const ok = rt.upload(Float32Array.from([1, 2]));
    assert.deepEqual(Array.from(await rt.read(ok)), [1, 2]);
  });
}
