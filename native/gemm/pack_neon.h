/*
 * aarch64 NEON f32 packs for the packed micro-kernels (gemm_kernels.h): the two transposing ones,
 * whose scalar versions store one float per MR / NR stride. Here 4 rows x 4 values are loaded,
 * transposed in registers and stored as 4 contiguous quarter-columns of the panel. The panels are
 * the scalar packs' (gemm_impl.inc, moe_impl.inc), bit for bit. Defined on aarch64 only.
 */
#ifndef MOEKIT_PACK_NEON_H
#define MOEKIT_PACK_NEON_H

#include <stdint.h>

#include "gemm_kernels.h"

#if defined(__aarch64__)
/* 1 where these packs write kr's panels: the NEON ISA in use, MR and NR multiples of 4. */
int mk_pack_neon_fits(const mk_kernel_f32 *kr);

/* op(A)[i, p] = sc(r) * a[row(r)*lda + pc + p], r = rbase + i (i < mc), row(r) = idx ? idx[r] : r,
 * sc(r) = scale ? scale[r] : 1: MR-row panels, panel i0 at dst + i0*kc, rows past mc zero. */
void mk_pack_a_rows_f32_neon(const float *a, const int32_t *idx, const float *scale, int64_t lda, int64_t rbase,
                             int64_t mc, int64_t pc, int64_t kc, int mr, float *restrict dst);

/* op(B)[p, j] = b[j*ldb + p] (B stored [n, k], b at row n0, column pc): NR-column panels,
 * panel j0 at dst + j0*kc, columns past nc zero. */
void mk_pack_bt_f32_neon(const float *b, int64_t ldb, int64_t nc, int64_t kc, int nr, float *restrict dst);
#endif

#endif
