// The grouped GEMM of the 'device' path: rows of expert e (a segment whose offsets live in a
// device tensor) times that expert's weight matrix, as one autograd node over the backend's
// DeviceMoeKernels. Rows are sized for the worst case; rows past the last offset come out 0
// (and get no gradient). The host-offset twin is ../grouped-gemm.ts.
import { Tensor, makeOutput } from '../../tensor/tensor.js';
import { shapeToString } from '../../tensor/shape.js';
import type { GroupedMatmulOptions } from '../grouped-gemm.js';
import { deviceKernels } from '../execution/plan.js';

/** x [S, in], w [E, ·, ·] and seg [E+1] i32 on the device -> [S, out]. */
export function groupedMatmulOnDevice(x: Tensor, w: Tensor, seg: Tensor, opts: GroupedMatmulOptions): Tensor {
  const E = w.shape[0]!;
  const [inW, outW] = opts.transB ? [w.shape[2]!, w.shape[1]!] : [w.shape[1]!, w.shape[2]!];
  const k = deviceKernels(x.backend);
  if (!k || x.ndim !== 2 || w.ndim !== 3 || x.shape[1] !== inW || seg.size !== E + 1 || seg.dtype !== 'i32') {
    throw new RangeError(
      `groupedMatmulOnDevice: x ${shapeToString(x.shape)}, w ${shapeToString(w.shape)} (transB ${opts.transB}) and seg ${shapeToString(seg.shape)} ${seg.dtype} do not fit${k ? '' : ` (the ${x.backend.name} backend has no device MoE kernels)`}`,
    );
  }
  const S = x.shape[0]!;
  const b = x.backend;
  const geom = { seg: seg.storage, numExperts: E, rows: S };
  const out = k.groupedGemm({ ...geom, a: x.storage, b: w.storage, trans: opts.transB, n: outW, k: inW });
  return makeOutput(b, out, [S, outW], {
    name: 'groupedMatmulOnDevice',
    inputs: [x, w],
    backward: (g) => {
      // dX_e = g_e · op(W_e)ᵀ ;  dW_e = x_eᵀ g_e, or g_eᵀ x_e for [out, in] weights
      const dx = x.requiresGrad
        ? new Tensor(k.groupedGemm({ ...geom, a: g.storage, b: w.storage, trans: !opts.transB, n: inW, k: outW }), [S, inW], b)
        : null;
      const wg = { seg: seg.storage, numExperts: E };
      const dw = w.requiresGrad
        ? new Tensor(
            opts.transB
              ? k.groupedWgrad({ ...wg, a: g.storage, dy: x.storage, k: outW, n: inW })
              : k.groupedWgrad({ ...wg, a: x.storage, dy: g.storage, k: inW, n: outW }),
            w.shape,
            b,
          )
        : null;
      return [dx, dw];
    },
  });
}
