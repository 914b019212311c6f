/*
 * bf16 row conversions and bf16 pair packs, shared by the bf16 GEMM (gemm_bf16.c), the grouped
 * MoE GEMMs' bf16 operands (moe_bf16.c) and the engine's conversions (ops/half_convert.c).
 *
 * Conversions, bit for bit as PyTorch's CPU casts (src/io/half.ts): bf16 -> f32 is exact (a
 * shift by 16); f32 -> bf16 rounds to nearest even in integer arithmetic, every NaN -> 0xffff
 * (VCVTNEPS2BF16 is not used: it flushes denormals and keeps NaN payloads). Vectorised for
 * AVX-512, AVX2 and NEON (by mk_cpu_isa()), scalar elsewhere; every path gives the same bits.
 *
 * Pair packs (the layout of gemm_kernels.h panels in pairs mode, moe_bf16.h): one 32-bit panel
 * element holds the bf16 values of K = 2q (low half) and 2q + 1 (high half; 0 past an odd K).
 * The AVX-512 path transposes 16 rows of pairs in registers (pack_avx512.c's transpose).
 */
#ifndef MOEKIT_BF16_PACK_H
#define MOEKIT_BF16_PACK_H

#include <stdint.h>
#include <string.h>

/* bf16 bits -> f32 (exact) */
static inline float mk_bf16_to_f32(uint16_t h) {
  const uint32_t b = (uint32_t)h << 16;
  float f;
  memcpy(&f, &b, 4);
  return f;
}

/* f32 bits -> bf16, round to nearest even, NaN -> 0xffff */
static inline uint16_t mk_bf16_from_bits(uint32_t b) {
  if ((b & 0x7fffffffu) > 0x7f800000u) return 0xffffu;
  return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

static inline uint16_t mk_bf16_from_f32(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return mk_bf16_from_bits(b);
}

/* dst[i] = f32(src[i]), i < n */
void mk_bf16_widen(const uint16_t *src, int64_t n, float *dst);

/* dst[i] = bf16(src[i]), i < n */
void mk_bf16_narrow(const float *src, int64_t n, uint16_t *dst);

/* mk_bf16_narrow over `rows` rows of n elements: src row i at src + i*lds, dst row i at dst + i*ldd */
void mk_bf16_narrow_rows(const float *src, int64_t lds, int64_t rows, int64_t n, uint16_t *dst, int64_t ldd);

/* dst[i] = bf16(sc * x_i), i < n: x_i = src[i] as f32 (bf16 bits widened when src_bf16), the
 * product in f32, rounded once */
void mk_bf16_narrow_scaled(const void *src, int src_bf16, float sc, int64_t n, uint16_t *dst);

/* Panel steps from rows that hold K: out[q*width + i] = pair(rows[i][2q], rows[i][2q + 1]) for
 * i < h, q < ceil(kc/2) (the high half 0 past kc); zero for h <= i < width. h <= width. */
void mk_bf16_pairs_from_rows(const uint16_t *const *rows, int h, int64_t kc, int width, uint32_t *out);

/* One panel step from two rows that hold the panel's columns: out[i] = lo[i] | hi[i] << 16
 * (hi NULL: 0) for i < w, zero for w <= i < width. */
void mk_bf16_pairs_interleave(const uint16_t *lo, const uint16_t *hi, int64_t w, int width, uint32_t *out);

/* mk_bf16_pairs_interleave over n columns in panels of `width` (the last partial), panel j at
 * out + j*stride: one ISA dispatch for a whole row pair. */
void mk_bf16_pairs_interleave_panels(const uint16_t *lo, const uint16_t *hi, int64_t n, int width, int64_t stride,
                                     uint32_t *out);

#endif
