/*
 * AVX2 f32 packs for the packed micro-kernels (gemm_kernels.h): panels of MR <= 8 rows of op(A)
 * and of NR (a multiple of 8) columns of op(B), laid out as the kernels read them. The
 * transposing packs read 8 contiguous floats of 8 source rows and transpose them in registers
 * (the scalar packs store one float per MR / NR stride instead, and GCC turns their full-width
 * row copies into a libc memcpy call per 64-byte row). They copy (or scale, as the scalar packs
 * do: sc * a) values only, so the panels are the scalar packs' bit for bit. Rows can be gathered
 * through an index and scaled (the MoE dispatch gather and combine weights); the plain GEMM
 * passes neither. Call only where mk_cpu_isa() is MK_ISA_AVX2 or better (x86-64).
 */
#ifndef MOEKIT_PACK_AVX2_H
#define MOEKIT_PACK_AVX2_H

#include <stdint.h>

#include "gemm_kernels.h"

/* 1 where these packs write kr's panels: the AVX2 ISA in use, MR <= 8, NR a multiple of 8. */
int mk_pack_avx2_fits(const mk_kernel_f32 *kr);

/* Which x86-64 register packs write kr's panels (these, pack_avx512.h's, or none: the scalar
 * packs), for the GEMM driver and the MoE jobs to dispatch on. */
enum { MK_PACKS_SCALAR = 0, MK_PACKS_AVX512 = 1, MK_PACKS_AVX2 = 2 };
int mk_packs_x86_for(const mk_kernel_f32 *kr);

/* op(A)[i, p] = sc(r) * a[row(r)*lda + pc + p], r = rbase + i (i < mc), row(r) = idx ? idx[r] : r,
 * sc(r) = scale ? scale[r] : 1: MR-row panels, panel i0 at dst + i0*kc, rows past mc zero. */
void mk_pack_a_rows_f32_avx2(const float *a, const int32_t *idx, const float *scale, int64_t lda, int64_t rbase,
                             int64_t mc, int64_t pc, int64_t kc, int mr, float *restrict dst);

/* op(A)[i, p] = sc(r) * a[row(r)*lda + m0 + i], r = base + p (p < kc): the same panels, read
 * from source rows that hold op(A)'s columns (a transposed A, or a weight gradient's rows). */
void mk_pack_a_wgrad_f32_avx2(const float *a, const int32_t *idx, const float *scale, int64_t lda, int64_t base,
                              int64_t m0, int64_t mc, int64_t kc, int mr, float *restrict dst);

/* op(B)[p, j] = b[j*ldb + p] (B stored [n, k], b at row n0, column pc): NR-column panels,
 * panel j0 at dst + j0*kc, columns past nc zero. */
void mk_pack_bt_f32_avx2(const float *b, int64_t ldb, int64_t nc, int64_t kc, int nr, float *restrict dst);

/* op(B)[p, j] = src(p)[j], src(p) = b + (idx ? idx[base + p] : base + p) * ldb: NR-column
 * panels copied MK_PACK_ROWS rows a pass (pack_avx512.h), panel j0 at dst + j0*kc, columns past nc zero. */
void mk_pack_b_rows_f32_avx2(const float *b, const int32_t *idx, int64_t base, int64_t ldb, int64_t nc, int64_t kc,
                             int nr, float *restrict dst);

#endif
