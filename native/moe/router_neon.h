/*
 * aarch64 NEON pieces of the router pass (router.c), defined in router_neon.c on aarch64 only.
 */
#ifndef MOEKIT_ROUTER_NEON_H
#define MOEKIT_ROUTER_NEON_H

#include <stdint.h>

#if defined(__aarch64__)
/* Row t of routerLayerBackward's dx in blocks of 32 columns j:
 *   o[j] = Σ_k [rows[k] >= 0] rdx[rows[k]*h + j]  +  Σ_e dl[e] * wr[e*h + j]
 * with the sums in registers, term by term in router_impl.inc's tail_dx_row order and without
 * contraction (a multiply, then an add), so its bits are the generic build's. Returns the first
 * column not done (h rounded down to a multiple of 32); the caller finishes the row. */
int64_t mk_router_dx_row_neon_f32(int64_t e, int64_t k, int64_t h, const int32_t *rows, const float *dl,
                                  const float *wr, const float *rdx, float *o);
#endif

#endif
