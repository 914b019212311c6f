// The device-side MoE kernels (src/backend/webgpu/kernels/moe.ts) against the reference twins
// (src/backend/reference/moe.ts): the slot plan (dropless and with a capacity; many ties), the
// grouped GEMM over the plan's segments with the row gather and scale (B plain and
// transposed) and its weight gradient, SwiGLU (fused and interleaved layouts) and its backward,
// GPT-OSS's clamped activation (against the engine's clampedSwiglu), and the weighted combine.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { referenceMoeKernels as ref } from '../src/backend/reference/moe.js';
import { openDevice } from '../src/backend/webgpu/device.js';
import { setBackend } from '../src/backend/index.js';
import { combine, gatedActivation, groupedGemm, groupedWgrad, slotPlan, swigluBackward } from '../src/backend/webgpu/kernels/moe.js';
import { clampedSwiglu } from '../src/moe/experts.js';
import { fromArray } from '../src/ops/index.js';
import { GpuRuntime } from '../src/backend/webgpu/runtime.js';
import { webgpuOrSkip } from './helpers/webgpu.js';

const wave = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233));

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i]! - expected[i]!) <= tol * (1 + Math.abs(expected[i]!))))
      assert.fail(`${what}[${i}]: webgpu ${actual[i]}, reference ${expected[i]}`);
  }
}

const gpu = await webgpuOrSkip('webgpu MoE kernels');
if (gpu) {
  test('webgpu MoE router: softmax then top-k gives the reference router pass ids (ties: lower expert first) and renormalised weights', async () => {
    const [T, E, K] = [6, 5, 2];
    // rows with tied logits: the tie order decides the ids
    const logits = Float32Array.from({ length: T * E }, (_, j) => Math.round(2 * Math.sin(j * 1.7)) / 2);
    const r = ref.routerForward(logits.slice(), { numTokens: T, numExperts: E, topK: K, renorm: true, scale: 1 });
    const scores = gpu.softmax(gpu.fromArray(logits.slice()), T, E, false);
    const top = gpu.topk(scores, T, E, K, true);
    const sums = gpu.reduce('sum', top.values, T, K, 1);
    const weights = gpu.binary('div', top.values, [K, 1], sums, [1, 0], [T, K], 'f32');
    close(await gpu.read(top.indices), r.ids, 'router ids', 0);
    close(await gpu.read(weights), r.weights, 'router weights');
    close(await gpu.read(scores), r.scores, 'router scores');
  });

  const opened = await openDevice();
  assert.ok(opened.ok);
  const rt = new GpuRuntime(opened.opened.device);
  const [T, K, E, k, n, i] = [9, 2, 4, 5, 6, 3];
  // ids with many ties and one expert never chosen
  const ids = Int32Array.from({ length: T * K }, (_, s) => [0, 2, 2, 1, 0, 2][s % 6]!);
  const weights = wave(T * K, 1).map(Math.abs);

  /**
   * groupedGemm (both layouts) and groupedWgrad on the slot plan of ids against the reference
   * gemmRows / gemmWgrad: rows past seg[E] come out 0.
   */
  async function checkGrouped(ids: Int32Array, T: number, K: number, E: number, k: number, n: number, capacity: number | null) {
    const weights = wave(T * K, 1).map(Math.abs);
    const plan = ref.planRoutes({ ids, numTokens: T, topK: K, numExperts: E, capacity, weights });
    const S = plan.segOffsets[E]!;
    const dev = slotPlan(rt, rt.upload(ids.slice()), E, capacity);
    const x = wave(T * k, 2);
    for (const trans of [false, true]) {
      const b = wave(E * k * n, 3);
      const expected = new Float32Array(S * n);
      ref.gemmRows({
        a: { data: x, ld: k },
        aIdx: plan.rowTokens,
        scale: plan.rowWeights,
        b: { data: b, ld: trans ? k : n, trans, expertStride: k * n },
        seg: plan.segOffsets,
        c: { data: expected, ld: n },
        n,
        k,
        accumulate: false,
      });
      const c = groupedGemm(rt, {
        a: rt.upload(x),
        aIdx: rt.upload(plan.rowTokens.slice()),
        scale: rt.upload(Float32Array.from(plan.rowWeights)),
        b: rt.upload(b),
        trans,
        seg: dev.seg,
        numExperts: E,
        rows: T * K,
        n,
        k,
      });
      close(await rt.read(c), [...expected, ...new Array((T * K - S) * n).fill(0)], `groupedGemm trans=${trans}`);
    }

    const dy = wave(S * n, 6);
    const dbRef = new Float32Array(E * k * n);
    ref.gemmWgrad({
      a: { data: x, ld: k },
      aIdx: plan.rowTokens,
      scale: plan.rowWeights,
      b: { data: dy, ld: n },
      bIdx: null,
      seg: plan.segOffsets,
      c: dbRef,
      m: k,
      n,
      accumulate: false,
    });
    const db = groupedWgrad(rt, {
      a: rt.upload(x),
      aIdx: rt.upload(plan.rowTokens.slice()),
      scale: rt.upload(Float32Array.from(plan.rowWeights)),
      dy: rt.upload(dy),
      seg: dev.seg,
      numExperts: E,
      k,
      n,
    });
    close(await rt.read(db), dbRef, 'groupedWgrad');
  }

  test('webgpu MoE kernels: grouped GEMM and weight gradient on tiles that several experts share (80 rows, k 37, n 45, an empty expert, drops)', async () => {
    const [T2, E2] = [40, 6];
    // runs of one expert 3..17 slots long: segments start and end inside the 32-row tiles; expert 4 is never chosen
    const ids2 = Int32Array.from({ length: T2 * 2 }, (_, s) => [0, 1, 2, 3, 5][Math.floor(Math.sqrt(s * 3)) % 5]!);
    for (const capacity of [null, 11]) await checkGrouped(ids2, T2, 2, E2, 37, 45, capacity);
  });

  for (const capacity of [null, 2]) {
    test(`webgpu MoE kernels: slot plan, grouped GEMM and weight gradient, SwiGLU / GPT-OSS and backward, combine (capacity ${capacity ?? 'none'})`, async () => {
      const plan = ref.planRoutes({ ids, numTokens: T, topK: K, numExperts: E, capacity, weights });
      const S = plan.segOffsets[E]!;
      const dev = slotPlan(rt, rt.upload(ids.slice()), E, capacity);
      const counts = Int32Array.from({ length: E }, (_, e) => ids.filter((v) => v === e).length);
      close(await rt.read(dev.counts), counts, 'counts', 0);
      close(await rt.read(dev.seg), plan.segOffsets, 'seg', 0);
      close(await rt.read(dev.slotRows), plan.slotRows, 'slotRows', 0);
      close(await rt.read(dev.sortedSlots), [...plan.sortedSlots, ...new Array(T * K - S).fill(-1)], 'sortedSlots', 0);

      await checkGrouped(ids, T, K, E, k, n, capacity);

      const gu = wave(S * 2 * i, 4).map((v) => 3 * v);
      for (const layout of ['fused', 'interleaved'] as const) {
        const h = new Float32Array(S * i);
        const [upOffset, colStride] = layout === 'fused' ? [i, 1] : [1, 2];
        ref.swigluForward({ gu, ld: 2 * i, gateOffset: 0, upOffset, colStride, rows: S, i, h });
        close(await rt.read(gatedActivation(rt, rt.upload(gu), S, i, layout, { kind: 'swiglu' })), h, `swiglu ${layout}`);
      }
      setBackend('reference');
      const pairs = Array.from({ length: S * i }, (_, e) => [
        gu[Math.floor(e / i) * 2 * i + 2 * (e % i)]!,
        gu[Math.floor(e / i) * 2 * i + 2 * (e % i) + 1]!,
      ]);
      const gptOss = clampedSwiglu(
        fromArray(
          Float32Array.from(pairs, (p) => p[0]!),
          [S, i],
        ),
        fromArray(
          Float32Array.from(pairs, (p) => p[1]!),
          [S, i],
        ),
        1.5,
        1.702,
      );
      close(
        await rt.read(gatedActivation(rt, rt.upload(gu), S, i, 'interleaved', { kind: 'gpt-oss', limit: 1.5, alpha: 1.702 })),
        await gptOss.data(),
        'gpt-oss',
      );

      const dh = wave(S * i, 7);
      const dguRef = new Float32Array(S * 2 * i);
      const dotRef = new Float32Array(S);
      ref.swigluBackward({
        gu,
        ld: 2 * i,
        gateOffset: 0,
        upOffset: i,
        colStride: 1,
        rows: S,
        i,
        dy: dh,
        rowScale: plan.rowWeights,
        dgu: dguRef,
        hOut: null,
        rowDot: dotRef,
      });
      const back = swigluBackward(rt, rt.upload(gu), rt.upload(dh), rt.upload(Float32Array.from(plan.rowWeights)), S, i);
      close(await rt.read(back.dgu), dguRef, 'swigluBackward dgu');
      close(await rt.read(back.rowDot), dotRef, 'swigluBackward rowDot');

      const y = wave(S * n, 5);
      const out = new Float32Array(T * n);
      ref.combine({ y: { data: y, ld: n }, slotRows: plan.slotRows, weights, numTokens: T, topK: K, h: n, out });
      close(await rt.read(combine(rt, rt.upload(y), dev.slotRows, rt.upload(weights.slice()), T, K, n)), out, 'combine');
    });
  }
}
