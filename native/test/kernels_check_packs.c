/* The AVX2 f32 packs (native/gemm/pack_avx2.h) against panels built here by the formulas of
 * their header, bit for bit (memcmp): every panel width the packs take (MR 1..8, NR 8 / 16 / 24),
 * partial panels, K not a multiple of 8, gathered rows and scales (negative ones included, so a
 * padded lane written as -0 would show). Run where the ISA in use is AVX2 or AVX-512 on x86-64. */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "kernels_check.h"
#include "pack_avx2.h"

#if defined(__x86_64__)
enum { ROWS = 40, B_ROWS = 64, LD = 53 };

/* values of a generator of its own (an LCG), so that this check leaves kc_rand's sequence, and
 * with it the inputs of the checks after it, as they were without it */
static float *filled(int64_t n) {
  static uint32_t state = 12345;
  float *p = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    state = state * 1664525u + 1013904223u;
    p[i] = (float)(state >> 8) / (float)(1u << 24) * 2 - 1;
  }
  return p;
}

static void compare(const char *what, int mr_or_nr, int64_t count, int64_t kc, const float *got, const float *want,
                    int variant) {
  if (memcmp(got, want, sizeof(float) * (size_t)(count * kc)))
    kc_fail("%s: panel width %d, %lld x %lld (variant %d) differs from the reference", what, mr_or_nr, (long long)count,
            (long long)kc, variant);
}

static void check_a_packs(int mr, int64_t mc, int64_t kc, int gather, int scaled) {
  const int64_t pad = (mc + mr - 1) / mr * mr, pc = 3, rbase = 2, m0 = 5;
  float *a = filled(ROWS * LD), *sc = filled(ROWS), *got = malloc(sizeof(float) * (size_t)(pad * kc));
  float *want = calloc((size_t)(pad * kc), sizeof(float));
  int32_t idx[ROWS];
  for (int r = 0; r < ROWS; r++) idx[r] = (r * 7 + 3) % ROWS;
  const int32_t *ix = gather ? idx : NULL;
  const float *s = scaled ? sc : NULL;
  const int variant = gather * 2 + scaled;
  /* rows mode: op(A)[i, p] = sc(r) * a[row(r)*LD + pc + p], r = rbase + i */
  for (int64_t i = 0; i < mc; i++)
    for (int64_t p = 0; p < kc; p++) {
      const int64_t r = rbase + i, row = ix ? ix[r] : r;
      const float v = a[row * LD + pc + p];
      want[(i / mr) * mr * kc + p * mr + i % mr] = s ? s[r] * v : v;
    }
  memset(got, 0x7f, sizeof(float) * (size_t)(pad * kc));
  mk_pack_a_rows_f32_avx2(a, ix, s, LD, rbase, mc, pc, kc, mr, got);
  compare("mk_pack_a_rows_f32_avx2", mr, pad, kc, got, want, variant);
  /* wgrad mode: op(A)[i, p] = sc(r) * a[row(r)*LD + m0 + i], r = rbase + p */
  memset(want, 0, sizeof(float) * (size_t)(pad * kc));
  for (int64_t i = 0; i < mc; i++)
    for (int64_t p = 0; p < kc; p++) {
      const int64_t r = rbase + p, row = ix ? ix[r] : r;
      const float v = a[row * LD + m0 + i];
      want[(i / mr) * mr * kc + p * mr + i % mr] = s ? s[r] * v : v;
    }
  memset(got, 0x7f, sizeof(float) * (size_t)(pad * kc));
  mk_pack_a_wgrad_f32_avx2(a, ix, s, LD, rbase, m0, mc, kc, mr, got);
  compare("mk_pack_a_wgrad_f32_avx2", mr, pad, kc, got, want, variant);
  free(a), free(sc), free(got), free(want);
}

static void check_b_packs(int nr, int64_t nc, int64_t kc, int gather) {
  const int64_t pad = (nc + nr - 1) / nr * nr, base = 4, n0 = 2;
  float *b = filled(B_ROWS * LD), *got = malloc(sizeof(float) * (size_t)(pad * kc));
  float *want = calloc((size_t)(pad * kc), sizeof(float));
  int32_t idx[ROWS];
  for (int r = 0; r < ROWS; r++) idx[r] = ROWS - 1 - (r * 3) % ROWS;
  /* rows: op(B)[p, j] = src(p)[j], src(p) = b + row(base + p)*LD + n0 */
  for (int64_t p = 0; p < kc; p++)
    for (int64_t j = 0; j < nc; j++)
      want[(j / nr) * nr * kc + p * nr + j % nr] = b[(gather ? idx[base + p] : base + p) * LD + n0 + j];
  memset(got, 0x7f, sizeof(float) * (size_t)(pad * kc));
  mk_pack_b_rows_f32_avx2(b + n0, gather ? idx : NULL, base, LD, nc, kc, nr, got);
  compare("mk_pack_b_rows_f32_avx2", nr, pad, kc, got, want, gather);
  /* transposed: op(B)[p, j] = b[(n0 + j)*LD + 1 + p] */
  memset(want, 0, sizeof(float) * (size_t)(pad * kc));
  for (int64_t p = 0; p < kc; p++)
    for (int64_t j = 0; j < nc; j++) want[(j / nr) * nr * kc + p * nr + j % nr] = b[(n0 + j) * LD + 1 + p];
  memset(got, 0x7f, sizeof(float) * (size_t)(pad * kc));
  mk_pack_bt_f32_avx2(b + n0 * LD + 1, LD, nc, kc, nr, got);
  compare("mk_pack_bt_f32_avx2", nr, pad, kc, got, want, 0);
  free(b), free(got), free(want);
}

void kc_check_packs(void) {
  if (mk_cpu_isa() != MK_ISA_AVX2 && mk_cpu_isa() != MK_ISA_AVX512) return;
  const int64_t ks[] = {1, 7, 8, 19, 32};
  for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++) {
    for (int mr = 1; mr <= 8; mr++)
      for (int64_t mc = 1; mc <= 2 * mr + 1; mc += mr > 2 ? mr - 2 : 1)
        for (int v = 0; v < 4; v++) check_a_packs(mr, mc, ks[q], v >> 1, v & 1);
    for (int nr = 8; nr <= 24; nr += 8)
      for (int64_t nc = 1; nc <= 2 * nr + 3; nc += 5)
        for (int g = 0; g < 2; g++) check_b_packs(nr, nc, ks[q], g);
  }
}
#else
void kc_check_packs(void) {}
#endif
