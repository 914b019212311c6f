// Backend.deviceMoe on webgpu: the slot plan and the grouped GEMMs of kernels/moe.ts behind the
// DeviceMoeKernels interface (../moe.ts), routing kept in GPU buffers.
import type { DeviceMoeKernels } from '../moe.js';
import type { Storage } from '../types.js';
import { groupedGemm, groupedWgrad, planRows, slotCounts, slotPlan } from './kernels/moe.js';
import type { GpuRuntime, GpuStorage } from './runtime.js';

export function createWebGPUDeviceMoe(rt: GpuRuntime, gpu: (s: Storage) => GpuStorage): DeviceMoeKernels {
  const host = (g: GpuStorage) => g as unknown as Storage;
  return {
    counts: (ids, numExperts) => host(slotCounts(rt, gpu(ids), numExperts)),
    planRoutes(ids, numTokens, topK, numExperts, capacity) {
      const g = gpu(ids);
      if (g.length !== numTokens * topK)
        throw new RangeError(`webgpu planRoutes: ids hold ${g.length} slots, not T·K = ${numTokens}·${topK}`);
      const plan = slotPlan(rt, g, numExperts, capacity);
      const rows = planRows(rt, plan, topK, numExperts);
      return {
        counts: host(plan.counts),
        seg: host(plan.seg),
        slotRows: host(plan.slotRows),
        rowSlots: host(rows.rowSlots),
        rowTokens: host(rows.rowTokens),
        rowExperts: host(rows.rowExperts),
        rowValid: host(rows.rowValid),
      };
    },
    groupedGemm: (a) =>
      host(
        groupedGemm(rt, {
          a: gpu(a.a),
          aIdx: null,
          scale: null,
          b: gpu(a.b),
          trans: a.trans,
          seg: gpu(a.seg),
          numExperts: a.numExperts,
          rows: a.rows,
          n: a.n,
          k: a.k,
        }),
      ),
    groupedWgrad: (a) =>
      host(
        groupedWgrad(rt, {
          a: gpu(a.a),
          aIdx: null,
          scale: null,
          dy: gpu(a.dy),
          seg: gpu(a.seg),
          numExperts: a.numExperts,
          k: a.k,
          n: a.n,
        }),
      ),
  };
}
