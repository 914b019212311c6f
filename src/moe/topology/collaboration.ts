// CT-MoE message passing for the core MoELayer (any token-choice router, any expert bank).
// Per token, with the k selected experts' outputs out_k and combine coefficients a_k
// (the routing weights w_k when weights go on the output, 1 when they went on the input):
//   out'_k = out_k + c · Σ_j S_sub[k,j] out_j,   y = Σ_k a_k out'_k
// is linear in the outputs, so y = Σ_j b_j out_j with
//   b_j = a_j + c · Σ_k a_k S_sub[k,j]                       (b = a + c · aᵀ S_sub)
// MoELayer therefore runs the ordinary dispatch -> experts -> combine with b in place of the
// weights: exactly CT-MoE's message passing (up to float summation order), differentiable in
// S_raw, the router and the experts, with no [T, k, H] per-slot tensors; any Dispatcher works.
// A slot dropped by a capacity has output 0: it sends no message, but its out' (the messages it
// receives) is still combined with its coefficient. Under expert choice a token has no fixed k:
// parseMoEConfig rejects the topology there.
import type { Tensor } from '../../tensor/tensor.js';
import { add, div, mul } from '../../ops/elementwise.js';
import { indexSelect } from '../../ops/indexing.js';
import { matmul } from '../../ops/linalg.js';
import { sum } from '../../ops/reduce.js';
import { reshape } from '../../ops/shape.js';
import { shapeToString } from '../../tensor/shape.js';
import { arrayLike } from '../tensors.js';
import { deviceKernels } from '../execution/plan.js';

/** The routing bias routingScale · S.sum(dim=0) [N] (column sums; not detached). */
export function topologyRoutingBias(S: Tensor, routingScale: number): Tensor {
  return mul(sum(S, 0), routingScale);
}

/** S_sub[t,i,j] = S[idx_i, idx_j] with rows renormalised: S_sub /= rowsum + 1e-9. S [N, N], topkIds [T, K] -> [T, K, K]. */
export function topologySubmatrices(S: Tensor, topkIds: Tensor): Tensor {
  const N = S.shape[0]!;
  if (S.ndim !== 2 || S.shape[1] !== N || topkIds.ndim !== 2) {
    throw new RangeError(
      `topologySubmatrices: S ${shapeToString(S.shape)} and topkIds ${shapeToString(topkIds.shape)} must be [N, N] and [T, K]`,
    );
  }
  const [T, K] = topkIds.shape as [number, number];
  const raw = reshape(indexSelect(reshape(S, [N * N]), 0, pairIndex(topkIds, N)), [T, K, K]);
  return div(raw, add(sum(raw, -1, true), 1e-9));
}

/** [T·K·K] i32: ids[t,i]·N + ids[t,j], built on the device where the backend cannot read synchronously. */
function pairIndex(topkIds: Tensor, N: number): Tensor {
  const [T, K] = topkIds.shape as [number, number];
  if (deviceKernels(topkIds.backend)) return reshape(add(mul(reshape(topkIds, [T, K, 1]), N), reshape(topkIds, [T, 1, K])), [T * K * K]);
  const ids = topkIds.dataSync();
  const flat = new Int32Array(T * K * K);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < K; i++) {
      const row = ids[t * K + i]! * N;
      for (let j = 0; j < K; j++) flat[(t * K + i) * K + j] = row + ids[t * K + j]!;
    }
  }
  return arrayLike(topkIds, flat);
}

/** b = a + collabScale · aᵀ S_sub: the coefficients of the raw expert outputs once messages have passed. a [T, K], sSub [T, K, K] -> [T, K]. */
export function collaborationCoefficients(sSub: Tensor, a: Tensor, collabScale: number): Tensor {
  const [T, K] = a.shape as [number, number];
  const passed = reshape(matmul(reshape(a, [T, 1, K]), sSub.to(a.dtype)), [T, K]);
  return add(a, mul(passed, collabScale));
}
