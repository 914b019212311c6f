/* aarch64 NEON f32 packs (pack_neon.h), used by the plain GEMM (gemm_impl.inc) and the MoE
 * grouped GEMMs (moe_impl.inc) where mk_pack_neon_fits says so. Empty off aarch64. */
#include "pack_neon.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <stddef.h>

#include "cpu.h"

int mk_pack_neon_fits(const mk_kernel_f32 *kr) {
  return mk_cpu_isa() == MK_ISA_NEON && kr->mr % 4 == 0 && kr->nr % 4 == 0;
}

/* d[q*ld + l] = x_l[q] (q, l < 4): the 4 x 4 block of rows x0..x3 stored transposed */
static inline void store_transposed(float32x4_t x0, float32x4_t x1, float32x4_t x2, float32x4_t x3, float *d,
                                    int64_t ld) {
  const float64x2_t t0 = vreinterpretq_f64_f32(vtrn1q_f32(x0, x1)); /* x0[0] x1[0] x0[2] x1[2] */
  const float64x2_t t1 = vreinterpretq_f64_f32(vtrn2q_f32(x0, x1)); /* x0[1] x1[1] x0[3] x1[3] */
  const float64x2_t t2 = vreinterpretq_f64_f32(vtrn1q_f32(x2, x3));
  const float64x2_t t3 = vreinterpretq_f64_f32(vtrn2q_f32(x2, x3));
  vst1q_f32(d, vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)));
  vst1q_f32(d + ld, vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)));
  vst1q_f32(d + 2 * ld, vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)));
  vst1q_f32(d + 3 * ld, vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)));
}

/* d[p*ld + l] = sc[l] * s[l][p] (p < kc, l < 4), or s[l][p] without scale */
static void pack_4_rows(const float *const s[4], const float sc[4], int scaled, int64_t kc, float *restrict d,
                        int64_t ld) {
  int64_t p = 0;
  if (scaled) {
    const float32x4_t c0 = vdupq_n_f32(sc[0]), c1 = vdupq_n_f32(sc[1]), c2 = vdupq_n_f32(sc[2]),
                      c3 = vdupq_n_f32(sc[3]);
    for (; p + 4 <= kc; p += 4)
      store_transposed(vmulq_f32(c0, vld1q_f32(s[0] + p)), vmulq_f32(c1, vld1q_f32(s[1] + p)),
                       vmulq_f32(c2, vld1q_f32(s[2] + p)), vmulq_f32(c3, vld1q_f32(s[3] + p)), d + p * ld, ld);
    for (; p < kc; p++)
      for (int l = 0; l < 4; l++) d[p * ld + l] = sc[l] * s[l][p];
  } else {
    for (; p + 4 <= kc; p += 4)
      store_transposed(vld1q_f32(s[0] + p), vld1q_f32(s[1] + p), vld1q_f32(s[2] + p), vld1q_f32(s[3] + p), d + p * ld,
                       ld);
    for (; p < kc; p++)
      for (int l = 0; l < 4; l++) d[p * ld + l] = s[l][p];
  }
}

/* d[p*ld + l] for l < 4 from the first `valid` rows, zeros after (a partial group) */
static void pack_partial_rows(const float *const s[4], const float sc[4], int scaled, int valid, int64_t kc,
                              float *restrict d, int64_t ld) {
  for (int64_t p = 0; p < kc; p++)
    for (int l = 0; l < 4; l++) d[p * ld + l] = l >= valid ? 0.0f : scaled ? sc[l] * s[l][p] : s[l][p];
}

void mk_pack_a_rows_f32_neon(const float *a, const int32_t *idx, const float *scale, int64_t lda, int64_t rbase,
                             int64_t mc, int64_t pc, int64_t kc, int mr, float *restrict dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += mr)
    for (int g = 0; g < mr; g += 4) {
      const float *s[4];
      float sc[4];
      int valid = 0;
      for (int l = 0; l < 4; l++) {
        const int64_t r = rbase + i0 + g + l;
        s[l] = NULL;
        sc[l] = 0;
        if (i0 + g + l >= mc) continue;
        s[l] = a + (idx ? (int64_t)idx[r] : r) * lda + pc;
        sc[l] = scale ? scale[r] : 1.0f;
        valid++;
      }
      float *d = dst + i0 * kc + g;
      if (valid == 4)
        pack_4_rows(s, sc, scale != NULL, kc, d, mr);
      else
        pack_partial_rows(s, sc, scale != NULL, valid, kc, d, mr);
    }
}

void mk_pack_bt_f32_neon(const float *b, int64_t ldb, int64_t nc, int64_t kc, int nr, float *restrict dst) {
  static const float one[4] = {1, 1, 1, 1};
  for (int64_t j0 = 0; j0 < nc; j0 += nr)
    for (int g = 0; g < nr; g += 4) {
      const float *s[4];
      int valid = 0;
      for (int l = 0; l < 4; l++) {
        s[l] = NULL;
        if (j0 + g + l >= nc) continue;
        s[l] = b + (j0 + g + l) * ldb;
        valid++;
      }
      float *d = dst + j0 * kc + g;
      if (valid == 4)
        pack_4_rows(s, one, 0, kc, d, nr);
      else
        pack_partial_rows(s, one, 0, valid, kc, d, nr);
    }
}
#endif
