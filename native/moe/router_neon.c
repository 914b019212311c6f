/*
 * aarch64 NEON pieces of the router pass (router_neon.h): the layer backward's dx rows, the
 * loop GCC's generic build keeps on the stack (a store-to-load chain per term, as on x86:
 * router.c, tail_dx_row_a512_f32). The forward's softmax stays scalar: its exp is libm's, so
 * its scores stay bit-identical to the softmax op's.
 */
#include "router_neon.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#define MK_DX_VECS 8 /* 32 columns: router.c's MK_DWR_COLS */

int64_t mk_router_dx_row_neon_f32(int64_t e, int64_t k, int64_t h, const int32_t *rows, const float *dl,
                                  const float *wr, const float *rdx, float *o) {
  int64_t j0 = 0;
  for (; j0 + 4 * MK_DX_VECS <= h; j0 += 4 * MK_DX_VECS) {
    float32x4_t acc[MK_DX_VECS];
    for (int v = 0; v < MK_DX_VECS; v++) acc[v] = vdupq_n_f32(0);
    for (int64_t q = 0; q < k; q++) {
      if (rows[q] < 0) continue;
      const float *y = rdx + (int64_t)rows[q] * h + j0;
      for (int v = 0; v < MK_DX_VECS; v++) acc[v] = vaddq_f32(acc[v], vld1q_f32(y + 4 * v));
    }
    for (int64_t x = 0; x < e; x++) {
      const float32x4_t g = vdupq_n_f32(dl[x]);
      const float *we = wr + x * h + j0;
      for (int v = 0; v < MK_DX_VECS; v++) acc[v] = vaddq_f32(acc[v], vmulq_f32(g, vld1q_f32(we + 4 * v)));
    }
    for (int v = 0; v < MK_DX_VECS; v++) vst1q_f32(o + j0 + 4 * v, acc[v]);
  }
  return j0;
}
#endif
