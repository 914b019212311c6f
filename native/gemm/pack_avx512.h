/*
 * AVX-512 f32 packs for the packed micro-kernels (gemm_kernels.h): panels of MR <= 16 rows
 * of op(A) and of NR = 32 columns of op(B), laid out as the kernels read them. The transposing
 * packs read 16 contiguous floats of 16 source rows and transpose them in registers (a scalar
 * pack writes one float per MR / NR stride instead). Rows can be gathered through an index and
 * scaled (the MoE dispatch gather and combine weights); the plain GEMM passes neither.
 * Call only where mk_cpu_isa() is MK_ISA_AVX512 (x86-64).
 */
#ifndef MOEKIT_PACK_AVX512_H
#define MOEKIT_PACK_AVX512_H

#include <stdint.h>

#include "gemm_kernels.h"

/* 1 where these packs write kr's panels: the AVX-512 ISA in use, MR <= 16, NR = 32. */
int mk_pack_avx512_fits(const mk_kernel_f32 *kr);

/* op(A)[i, p] = sc(r) * a[row(r)*lda + pc + p], r = rbase + i (i < mc), row(r) = idx ? idx[r] : r,
 * sc(r) = scale ? scale[r] : 1: MR-row panels, panel i0 at dst + i0*kc, rows past mc zero. */
void mk_pack_a_rows_f32_avx512(const float *a, const int32_t *idx, const float *scale, int64_t lda, int64_t rbase,
                               int64_t mc, int64_t pc, int64_t kc, int mr, float *restrict dst);

/* op(A)[i, p] = sc(r) * a[row(r)*lda + m0 + i], r = base + p (p < kc): the same panels, read
 * from source rows that hold op(A)'s columns (a transposed A, or a weight gradient's rows). */
void mk_pack_a_wgrad_f32_avx512(const float *a, const int32_t *idx, const float *scale, int64_t lda, int64_t base,
                                int64_t m0, int64_t mc, int64_t kc, int mr, float *restrict dst);

/* op(B)[p, j] = b[j*ldb + p] (B stored [n, k], b at row n0, column pc): NR-column panels,
 * panel j0 at dst + j0*kc, columns past nc zero. */
void mk_pack_bt_f32_avx512(const float *b, int64_t ldb, int64_t nc, int64_t kc, int nr, float *restrict dst);

/* Source rows a B rows pack (this one, AVX2's) copies in one pass: each panel then gets that many
 * rows, contiguous in it, at a time instead of one row's NR floats per panel per pass. */
#define MK_PACK_ROWS 8

/* The pointers to rows p0 .. of a B rows pack's source, src(p) below, at most MK_PACK_ROWS and
 * none past kc, into row[]; returns how many. */
static inline int mk_pack_row_block(const float *b, const int32_t *idx, int64_t base, int64_t ldb, int64_t p0,
                                    int64_t kc, const float **row) {
  const int n = kc - p0 < MK_PACK_ROWS ? (int)(kc - p0 > 0 ? kc - p0 : 0) : MK_PACK_ROWS;
  for (int r = 0; r < n; r++) row[r] = b + (idx ? (int64_t)idx[base + p0 + r] : base + p0 + r) * ldb;
  return n;
}

/* op(B)[p, j] = src(p)[j], src(p) = b + (idx ? idx[base + p] : base + p) * ldb: 32-column
 * panels copied MK_PACK_ROWS rows a pass, columns past nc zero. */
void mk_pack_b_rows_f32_avx512(const float *b, const int32_t *idx, int64_t base, int64_t ldb, int64_t nc, int64_t kc,
                               float *restrict dst);

/* dst[p*ld + i] = src[i][p] (32-bit elements: moved, never read as floats) for i < h, p < n,
 * and 0 for h <= i < width; h <= width <= 16. */
void mk_pack_tr32_avx512(const void *const *src, int h, int64_t n, int width, int64_t ld, void *dst);

#endif
