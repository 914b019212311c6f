/*
 * aarch64 NEON (ASIMD) GEMM micro-kernels (gemm_neon.h), chosen by gemm_kernels.c for
 * MK_ISA_NEON; the plain GEMM and the MoE grouped GEMMs (native/moe) both take them from there.
 * Same contracts as the x86 kernels (gemm_kernels.h).
 *
 * Register budget (32 128-bit v registers):
 *   f32 8x12: 24 accumulators (8 rows x 3 vectors of 4) + 3 B vectors + 2 A vectors = 29.
 *   f64 8x6:  24 accumulators (8 rows x 3 vectors of 2) + 3 B vectors + 4 A vectors = 31.
 * Per k step the packed kernel loads its A column as vectors and multiplies each B vector by one
 * lane of them (FMLA by element, vfmaq_laneq): 5 loads for 24 FMAs (f32), so the 2-3 load pipes
 * of a Neoverse V1/V2 or Apple core keep its 4 FMA pipes fed; 24 independent accumulators hide
 * the 4-cycle FMA latency at 4 FMAs a cycle (docs/performance.md: NEON).
 */
#include "gemm_neon.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#define MK_PRAGMA(x) _Pragma(#x)
#define MK_UNROLL(n) MK_PRAGMA(GCC unroll n)

/* acc[R + l][v] += bv[v] * lane l of AV, for the lanes of one A vector */
#define FMA_LANES_F32(R, AV)                                            \
  MK_UNROLL(4) for (int v = 0; v < NV; v++) {                           \
    acc[(R)][v] = vfmaq_laneq_f32(acc[(R)][v], bv[v], (AV), 0);         \
    acc[(R) + 1][v] = vfmaq_laneq_f32(acc[(R) + 1][v], bv[v], (AV), 1); \
    acc[(R) + 2][v] = vfmaq_laneq_f32(acc[(R) + 2][v], bv[v], (AV), 2); \
    acc[(R) + 3][v] = vfmaq_laneq_f32(acc[(R) + 3][v], bv[v], (AV), 3); \
  }
#define FMA_LANES_F64(R, AV)                                            \
  MK_UNROLL(4) for (int v = 0; v < NV; v++) {                           \
    acc[(R)][v] = vfmaq_laneq_f64(acc[(R)][v], bv[v], (AV), 0);         \
    acc[(R) + 1][v] = vfmaq_laneq_f64(acc[(R) + 1][v], bv[v], (AV), 1); \
  }

/* Packed micro-kernel (gemm_kernels.h: mk_ukr_f32): MR rows (a multiple of the W lanes) x NV
 * vectors of W columns; AS is the packed A panel's stride (AS > MR: a row-edge variant that
 * skips the panel's zero-padded rows). The C tile is prefetched for writing on entry, as the
 * x86 kernels do. */
#define NEON_UKR(NAME, T, VEC, W, LD, ST, ADD, DUP, FMA_LANES, MR, NV_, AS)                                        \
  static void NAME(int64_t kc, const T *restrict a, const T *restrict b, T *restrict c, int64_t ldc, int load_c) { \
    enum { NV = NV_ };                                                                                             \
    VEC acc[MR][NV];                                                                                               \
    MK_UNROLL(16) for (int i = 0; i < MR; i++) {                                                                   \
      __builtin_prefetch(c + i * ldc, 1, 3);                                                                       \
      __builtin_prefetch(c + i * ldc + NV * W - 1, 1, 3);                                                          \
      MK_UNROLL(4) for (int v = 0; v < NV; v++) acc[i][v] = DUP(0);                                                \
    }                                                                                                              \
    MK_UNROLL(2) for (int64_t p = 0; p < kc; p++) {                                                                \
      VEC bv[NV];                                                                                                  \
      MK_UNROLL(4) for (int v = 0; v < NV; v++) bv[v] = LD(b + v * W);                                             \
      MK_UNROLL(16) for (int q = 0; q < MR / W; q++) {                                                             \
        const VEC av = LD(a + q * W);                                                                              \
        FMA_LANES(q *W, av)                                                                                        \
      }                                                                                                            \
      a += AS;                                                                                                     \
      b += NV * W;                                                                                                 \
    }                                                                                                              \
    MK_UNROLL(16) for (int i = 0; i < MR; i++) {                                                                   \
      MK_UNROLL(4) for (int v = 0; v < NV; v++) {                                                                  \
        T *cp = c + i * ldc + v * W;                                                                               \
        ST(cp, load_c ? ADD(LD(cp), acc[i][v]) : acc[i][v]);                                                       \
      }                                                                                                            \
    }                                                                                                              \
  }

/* Direct micro-kernel (gemm_kernels.h: mk_dkr_f32): A read in place through its two strides.
 * Where MR is a multiple of W, each k step gathers W rows' values into one vector (LD_LANES)
 * and multiplies by its lanes, as the packed kernel does: MR / W registers for A instead of MR
 * (with one register per row value GCC hoisted them all and spilled accumulators). Fewer rows
 * take one scalar per row (FMA_N). */
#define NEON_DKR(NAME, T, VEC, W, LD, ST, ADD, DUP, LD_LANES, FMA_LANES, FMA_N, MR, NV_)                         \
  static void NAME(int64_t kc, const T *restrict a, int64_t ars, int64_t acs, const T *restrict b, int64_t ldb,  \
                   T *restrict c, int64_t ldc, int load_c) {                                                     \
    enum { NV = NV_ };                                                                                           \
    VEC acc[MR][NV];                                                                                             \
    MK_UNROLL(16) for (int i = 0; i < MR; i++) { MK_UNROLL(4) for (int v = 0; v < NV; v++) acc[i][v] = DUP(0); } \
    for (int64_t p = 0; p < kc; p++) {                                                                           \
      VEC bv[NV];                                                                                                \
      MK_UNROLL(4) for (int v = 0; v < NV; v++) bv[v] = LD(b + v * W);                                           \
      if (MR % W == 0) {                                                                                         \
        MK_UNROLL(16) for (int q = 0; q < MR / W; q++) {                                                         \
          const VEC av = LD_LANES(a + q * W * ars, ars);                                                         \
          FMA_LANES(q *W, av)                                                                                    \
        }                                                                                                        \
      } else {                                                                                                   \
        MK_UNROLL(16) for (int i = 0; i < MR; i++) {                                                             \
          const T ai = a[i * ars];                                                                               \
          MK_UNROLL(4) for (int v = 0; v < NV; v++) acc[i][v] = FMA_N(acc[i][v], bv[v], ai);                     \
        }                                                                                                        \
      }                                                                                                          \
      a += acs;                                                                                                  \
      b += ldb;                                                                                                  \
    }                                                                                                            \
    MK_UNROLL(16) for (int i = 0; i < MR; i++) {                                                                 \
      MK_UNROLL(4) for (int v = 0; v < NV; v++) {                                                                \
        T *cp = c + i * ldc + v * W;                                                                             \
        ST(cp, load_c ? ADD(LD(cp), acc[i][v]) : acc[i][v]);                                                     \
      }                                                                                                          \
    }                                                                                                            \
  }

/* W values s rows apart, as one vector */
static inline float32x4_t lanes_f32(const float *p, int64_t s) {
  float32x4_t v = vld1q_dup_f32(p);
  v = vld1q_lane_f32(p + s, v, 1);
  v = vld1q_lane_f32(p + 2 * s, v, 2);
  return vld1q_lane_f32(p + 3 * s, v, 3);
}
static inline float64x2_t lanes_f64(const double *p, int64_t s) { return vld1q_lane_f64(p + s, vld1q_dup_f64(p), 1); }

#define UKR_S(NAME, MR, NV, AS) \
  NEON_UKR(NAME, float, float32x4_t, 4, vld1q_f32, vst1q_f32, vaddq_f32, vdupq_n_f32, FMA_LANES_F32, MR, NV, AS)
#define UKR_D(NAME, MR, NV, AS) \
  NEON_UKR(NAME, double, float64x2_t, 2, vld1q_f64, vst1q_f64, vaddq_f64, vdupq_n_f64, FMA_LANES_F64, MR, NV, AS)
#define DKR_S(NAME, MR, NV)                                                                                     \
  NEON_DKR(NAME, float, float32x4_t, 4, vld1q_f32, vst1q_f32, vaddq_f32, vdupq_n_f32, lanes_f32, FMA_LANES_F32, \
           vfmaq_n_f32, MR, NV)
#define DKR_D(NAME, MR, NV)                                                                                      \
  NEON_DKR(NAME, double, float64x2_t, 2, vld1q_f64, vst1q_f64, vaddq_f64, vdupq_n_f64, lanes_f64, FMA_LANES_F64, \
           vfmaq_n_f64, MR, NV)

/* f32 8x12 and its 4-row edge; f64 8x6 and its 4-row edge */
UKR_S(ukr_f32_neon_8x12, 8, 3, 8)
UKR_S(ukr_f32_neon_4x12_of8, 4, 3, 8)
UKR_D(ukr_f64_neon_8x6, 8, 3, 8)
UKR_D(ukr_f64_neon_4x6_of8, 4, 3, 8)

/* Cache blocks: a kc x NR panel of B in L1 (f32 512 x 12 x 4 B = 24 KiB of the 64 KiB L1d of a
 * Neoverse N1/V1/V2, 128 KiB on Apple cores), an mc x kc block of A in L2 (128 x 512 x 4 B =
 * 256 KiB: half a Neoverse core's 512 KiB-2 MiB L2), kc x nc of B in the shared cache. Chosen
 * by design, not measured on an ARM core yet (docs/performance.md: NEON). */
const mk_kernel_f32 mk_gemm_neon_f32 = {
    8, 12, 128, 512, 3072, ukr_f32_neon_8x12, "neon 8x12", {{4, ukr_f32_neon_4x12_of8}}};
const mk_kernel_f64 mk_gemm_neon_f64 = {8, 6, 96, 256, 1536, ukr_f64_neon_8x6, "neon 8x6", {{4, ukr_f64_neon_4x6_of8}}};

/* Direct families by panel width (<= 24 accumulators, A and B registers included <= 31):
 * f32 one vector x 16 rows, two x 12, three x 8; f64 one x 16, two x 10, three x 6.
 * Row counts per family: MR, M2, 4, 2, 1. */
#define DKR_FAMILY(DEF, PFX, MR, M2, NV) \
  DEF(PFX##_r0, MR, NV) DEF(PFX##_r1, M2, NV) DEF(PFX##_r2, 4, NV) DEF(PFX##_r3, 2, NV) DEF(PFX##_r4, 1, NV)
#define DKR_TABLE(PFX, NR, MR, M2)                                                  \
  {                                                                                 \
    NR, {                                                                           \
      {MR, PFX##_r0}, {M2, PFX##_r1}, {4, PFX##_r2}, {2, PFX##_r3}, { 1, PFX##_r4 } \
    }                                                                               \
  }

DKR_FAMILY(DKR_S, dkr_f32_neon_v1, 16, 8, 1)
DKR_FAMILY(DKR_S, dkr_f32_neon_v2, 12, 8, 2)
DKR_FAMILY(DKR_S, dkr_f32_neon_v3, 8, 4, 3)
DKR_FAMILY(DKR_D, dkr_f64_neon_v1, 16, 8, 1)
DKR_FAMILY(DKR_D, dkr_f64_neon_v2, 10, 8, 2)
DKR_FAMILY(DKR_D, dkr_f64_neon_v3, 6, 4, 3)

static const mk_direct_f32 d_f32_neon[3] = {DKR_TABLE(dkr_f32_neon_v1, 4, 16, 8), DKR_TABLE(dkr_f32_neon_v2, 8, 12, 8),
                                            DKR_TABLE(dkr_f32_neon_v3, 12, 8, 4)};
static const mk_direct_f64 d_f64_neon[3] = {DKR_TABLE(dkr_f64_neon_v1, 2, 16, 8), DKR_TABLE(dkr_f64_neon_v2, 4, 10, 8),
                                            DKR_TABLE(dkr_f64_neon_v3, 6, 6, 4)};

/* the narrowest family whose panel holds n columns, else the widest */
const mk_direct_f32 *mk_gemm_neon_direct_f32(int64_t n) {
  int i = 0;
  while (i + 1 < 3 && d_f32_neon[i].nr < n) i++;
  return &d_f32_neon[i];
}

const mk_direct_f64 *mk_gemm_neon_direct_f64(int64_t n) {
  int i = 0;
  while (i + 1 < 3 && d_f64_neon[i].nr < n) i++;
  return &d_f64_neon[i];
}
#endif
