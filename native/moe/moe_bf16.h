/*
 * bf16 operands of the grouped GEMMs (moe_impl.inc, f32 jobs only): an operand may be stored as
 * bf16 bit patterns (uint16) while the scale and the output stay f32, and the sum is accumulated
 * in f32. Two ways to run such a job:
 *  - pairs (CPUs with AVX512_BF16, MOEKIT_ISA avx512): every operand is packed as bf16 pairs
 *    along K (an f32 operand, or a scaled one, rounded to nearest even while packing) and the
 *    MR x 32 micro-kernel runs VDPBF16PS, two products per f32 lane and instruction;
 *  - widened (AVX2, NEON, scalar): the packs widen bf16 to f32 (exact) and the ISA's f32
 *    micro-kernel runs, so only the operands' memory shrinks.
 * Packed panels have the layout of gemm_kernels.h; in pairs mode an element of a panel is one
 * 32-bit pair (k even in the low half, a zero pad past an odd K block), so a K block of kc
 * elements takes ceil(kc/2) panel steps.
 */
#ifndef MOEKIT_MOE_BF16_H
#define MOEKIT_MOE_BF16_H

#include <stdint.h>

#include "gemm_kernels.h"

/* An operand as the packs read it: element (row, col) at p[row*ld + col] (bf16 when half),
 * rows gathered through idx (NULL: as they are) and, where the pack applies one, scaled by
 * scale[r] (r the sorted row). */
typedef struct {
  const void *p;
  int half;
  const int32_t *idx;
  const float *scale;
  int64_t ld;
} mk_moe_src;

/* The pair micro-kernel (kc counts elements; the kernel takes ceil(kc/2) pair steps), or NULL
 * where AVX512_BF16 does not run (the CPU, or MOEKIT_ISA below avx512). */
const mk_kernel_f32 *mk_moe_bf16_pair_kernel(void);

/* op(A) packed as moe_impl.inc's f32 pack does (MR-row panels, rows past mc zero).
 * rows mode (wgrad 0): op(A)[i, p] = scale[r]·A[row(r), pc + p], r = s0 + m0 + i;
 * wgrad mode:          op(A)[i, p] = scale[r]·A[row(r), m0 + i], r = s0 + pc + p. */
void mk_moe_pack_a_mixed(int wgrad, const mk_moe_src *a, int64_t s0, int64_t m0, int64_t mc, int64_t pc, int64_t kc,
                         int mr, int pairs, float *dst);

/* op(B) packed into NR-column panels (columns past nc zero), b->p offset by `off` elements.
 * rows mode: op(B)[p, j] = B[n0 + j, pc + p] (trans) or B[pc + p, n0 + j];
 * wgrad mode: op(B)[p, j] = B[row(r), n0 + j], r = s0 + pc + p (no scale). */
void mk_moe_pack_b_mixed(int wgrad, int trans, const mk_moe_src *b, int64_t off, int64_t s0, int64_t n0, int64_t nc,
                         int64_t pc, int64_t kc, int nr, int pairs, float *dst);

#endif
