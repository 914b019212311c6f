/*
 * GEMM micro-kernels: AVX-512, AVX2+FMA (x86-64 only, compiled with target
 * attributes so the rest of the build stays baseline) and portable C; the
 * aarch64 NEON kernels are in gemm_neon.c.
 *
 * Every kernel is the same outer-product loop, written once as a macro:
 * per k step it loads NV vectors of B, broadcasts MR values of A and does
 * MR*NV FMAs into an MR x NV array of vector accumulators. With the loops
 * fully unrolled GCC keeps the accumulators in registers (checked in the asm:
 * no spills), so the macro is as good as hand-written intrinsics here.
 *
 * Register budget (32 zmm for AVX-512, 16 ymm for AVX2):
 *   f32 AVX-512 14x32: 28 accumulators + 2 B vectors + 1 broadcast.
 *   (the 12x32, 6x32 and 8x48 alternatives ran alike on Zen 4; 14x32 wastes
 *   least on M = 128-ish shapes thanks to its row-edge variants;
 *   docs/performance.md: native/gemm/gemm_kernels.c: k_f32_avx512.)
 *   f32 AVX2     6x16: 12 accumulators + 2 B + 1 broadcast.
 * On Zen 4 a 512-bit FMA issues once per cycle with 4 cycles latency, so
 * >= 8 independent accumulators hide the latency; more accumulators per
 * broadcast lower the load:FMA ratio. Zen 5 issues two a cycle; 14x32 runs at
 * that peak from L1 there too, and its blocking changes (f32_avx512_init).
 */
#include "gemm_kernels.h"

#include <pthread.h>
#include <stdlib.h>

#include "gemm_neon.h"

#define MK_PRAGMA(x) _Pragma(#x)
#define MK_UNROLL(n) MK_PRAGMA(GCC unroll n)

/* NAME: function; ATTR: attributes; T: scalar; VEC: vector type of W lanes;
 * MR x NV*W block; AS: stride of the packed A panel (AS = MR for a full
 * kernel, AS > MR for the row-edge variants that skip the zero-padded rows).
 * The C tile is prefetched for writing on entry, so its lines arrive while the
 * k loop runs: with short K the stores' misses showed in a MoE GEMM's profile
 * (docs/performance.md: native/gemm/gemm_kernels.c: MK_DEF_UKR). */
#define MK_DEF_UKR(NAME, ATTR, T, VEC, W, LOADU, STOREU, FMADD, SET1, ZERO, ADD, MR, NV, AS)              \
  static ATTR void NAME(int64_t kc, const T *restrict a, const T *restrict b, T *restrict c, int64_t ldc, \
                        int load_c) {                                                                     \
    VEC acc[MR][NV];                                                                                      \
    MK_UNROLL(16) for (int i = 0; i < MR; i++) {                                                          \
      __builtin_prefetch(c + i * ldc, 1, 3);                                                              \
      __builtin_prefetch(c + i * ldc + NV * W - 1, 1, 3);                                                 \
      MK_UNROLL(8) for (int v = 0; v < NV; v++) acc[i][v] = ZERO();                                       \
    }                                                                                                     \
    MK_UNROLL(4) for (int64_t p = 0; p < kc; p++) {                                                       \
      VEC bv[NV];                                                                                         \
      MK_UNROLL(8) for (int v = 0; v < NV; v++) bv[v] = LOADU(b + v * W);                                 \
      MK_UNROLL(16) for (int i = 0; i < MR; i++) {                                                        \
        VEC ai = SET1(a[i]);                                                                              \
        MK_UNROLL(8) for (int v = 0; v < NV; v++) acc[i][v] = FMADD(ai, bv[v], acc[i][v]);                \
      }                                                                                                   \
      a += AS;                                                                                            \
      b += NV * W;                                                                                        \
    }                                                                                                     \
    if (load_c) {                                                                                         \
      MK_UNROLL(16) for (int i = 0; i < MR; i++) {                                                        \
        MK_UNROLL(8) for (int v = 0; v < NV; v++) {                                                       \
          T *cp = c + i * ldc + v * W;                                                                    \
          STOREU(cp, ADD(LOADU(cp), acc[i][v]));                                                          \
        }                                                                                                 \
      }                                                                                                   \
    } else {                                                                                              \
      MK_UNROLL(16) for (int i = 0; i < MR; i++) {                                                        \
        MK_UNROLL(8) for (int v = 0; v < NV; v++) STOREU(c + i * ldc + v * W, acc[i][v]);                 \
      }                                                                                                   \
    }                                                                                                     \
  }

/* The direct kernel (gemm_kernels.h): the same loop with A read in place.
 * With a run-time row stride GCC keeps the row offsets in spare registers
 * (for 16 rows some in xmm registers or on the stack: one extra move per two
 * rows); each FMA takes its A value as an embedded broadcast from memory. */
#define MK_DEF_DKR(NAME, ATTR, T, VEC, W, LOADU, STOREU, FMADD, SET1, ZERO, ADD, MR, NV)                             \
  static ATTR void NAME(int64_t kc, const T *restrict a, int64_t ars, int64_t acs, const T *restrict b, int64_t ldb, \
                        T *restrict c, int64_t ldc, int load_c) {                                                    \
    VEC acc[MR][NV];                                                                                                 \
    MK_UNROLL(16) for (int i = 0; i < MR; i++) { MK_UNROLL(8) for (int v = 0; v < NV; v++) acc[i][v] = ZERO(); }     \
    MK_UNROLL(2) for (int64_t p = 0; p < kc; p++) {                                                                  \
      VEC bv[NV];                                                                                                    \
      MK_UNROLL(8) for (int v = 0; v < NV; v++) bv[v] = LOADU(b + v * W);                                            \
      MK_UNROLL(16) for (int i = 0; i < MR; i++) {                                                                   \
        VEC ai = SET1(a[i * ars]);                                                                                   \
        MK_UNROLL(8) for (int v = 0; v < NV; v++) acc[i][v] = FMADD(ai, bv[v], acc[i][v]);                           \
      }                                                                                                              \
      a += acs;                                                                                                      \
      b += ldb;                                                                                                      \
    }                                                                                                                \
    MK_UNROLL(16) for (int i = 0; i < MR; i++) {                                                                     \
      MK_UNROLL(8) for (int v = 0; v < NV; v++) {                                                                    \
        T *cp = c + i * ldc + v * W;                                                                                 \
        STOREU(cp, load_c ? ADD(LOADU(cp), acc[i][v]) : acc[i][v]);                                                  \
      }                                                                                                              \
    }                                                                                                                \
  }

/* ---- portable C: plain arrays; the compiler vectorises what it can ---- */
#define SC_ZERO() 0
#define SC_LOAD(p) (*(p))
#define SC_STORE(p, v) (*(p) = (v))
#define SC_FMA(x, y, z) ((x) * (y) + (z))
#define SC_SET1(x) (x)
#define SC_ADD(x, y) ((x) + (y))
MK_DEF_UKR(ukr_f32_scalar_4x8, , float, float, 1, SC_LOAD, SC_STORE, SC_FMA, SC_SET1, SC_ZERO, SC_ADD, 4, 8, 4)
MK_DEF_UKR(ukr_f64_scalar_4x4, , double, double, 1, SC_LOAD, SC_STORE, SC_FMA, SC_SET1, SC_ZERO, SC_ADD, 4, 4, 4)

static const mk_kernel_f32 k_f32_scalar = {4, 8, 128, 256, 2048, ukr_f32_scalar_4x8, "scalar 4x8", {{0, 0}}};
static const mk_kernel_f64 k_f64_scalar = {4, 4, 128, 256, 1024, ukr_f64_scalar_4x4, "scalar 4x4", {{0, 0}}};

#if defined(__x86_64__)
#include <immintrin.h>

#define A512 __attribute__((target("avx512f,avx512vl,avx512bw,fma")))
#define A256 __attribute__((target("avx2,fma")))
#define UKR512S(NAME, MR, NV, AS)                                                                               \
  MK_DEF_UKR(NAME, A512, float, __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_set1_ps, \
             _mm512_setzero_ps, _mm512_add_ps, MR, NV, AS)
#define UKR512D(NAME, MR, NV, AS)                                                                                \
  MK_DEF_UKR(NAME, A512, double, __m512d, 8, _mm512_loadu_pd, _mm512_storeu_pd, _mm512_fmadd_pd, _mm512_set1_pd, \
             _mm512_setzero_pd, _mm512_add_pd, MR, NV, AS)
#define UKR256S(NAME, MR, NV, AS)                                                                              \
  MK_DEF_UKR(NAME, A256, float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_set1_ps, \
             _mm256_setzero_ps, _mm256_add_ps, MR, NV, AS)
#define UKR256D(NAME, MR, NV, AS)                                                                                \
  MK_DEF_UKR(NAME, A256, double, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_fmadd_pd, _mm256_set1_pd, \
             _mm256_setzero_pd, _mm256_add_pd, MR, NV, AS)

/* f32 AVX-512 14x32 and its row-edge variants (4, 8, 11 of 14 rows). */
UKR512S(ukr_f32_avx512_14x32, 14, 2, 14)
UKR512S(ukr_f32_avx512_11x32_of14, 11, 2, 14)
UKR512S(ukr_f32_avx512_8x32_of14, 8, 2, 14)
UKR512S(ukr_f32_avx512_4x32_of14, 4, 2, 14)
/* alternatives, selectable for measurements (MOEKIT_GEMM_KERNEL=1..3) */
UKR512S(ukr_f32_avx512_12x32, 12, 2, 12)
UKR512S(ukr_f32_avx512_6x32, 6, 2, 6)
UKR512S(ukr_f32_avx512_8x48, 8, 3, 8)
/* f64 AVX-512 12x16 + edges */
UKR512D(ukr_f64_avx512_12x16, 12, 2, 12)
UKR512D(ukr_f64_avx512_8x16_of12, 8, 2, 12)
UKR512D(ukr_f64_avx512_4x16_of12, 4, 2, 12)
/* AVX2 6x16 (f32) and 6x8 (f64) + edges */
UKR256S(ukr_f32_avx2_6x16, 6, 2, 6)
UKR256S(ukr_f32_avx2_3x16_of6, 3, 2, 6)
UKR256D(ukr_f64_avx2_6x8, 6, 2, 6)
UKR256D(ukr_f64_avx2_3x8_of6, 3, 2, 6)

/* Direct kernels, in families by panel width: one vector of columns with 12-16
 * rows, two vectors with 6-12 rows (N > one vector, or small M). AVX-512 adds
 * a one-ymm family for N <= 8 f32 / 4 f64: Zen 4 issues two 256-bit FMAs per
 * cycle but one 512-bit, so there a half-empty zmm would halve the rate. */
#define DKR512S(NAME, MR, NV)                                                                                   \
  MK_DEF_DKR(NAME, A512, float, __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_set1_ps, \
             _mm512_setzero_ps, _mm512_add_ps, MR, NV)
#define DKR512D(NAME, MR, NV)                                                                                    \
  MK_DEF_DKR(NAME, A512, double, __m512d, 8, _mm512_loadu_pd, _mm512_storeu_pd, _mm512_fmadd_pd, _mm512_set1_pd, \
             _mm512_setzero_pd, _mm512_add_pd, MR, NV)
#define DKR256S(NAME, MR, NV)                                                                                  \
  MK_DEF_DKR(NAME, A256, float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_set1_ps, \
             _mm256_setzero_ps, _mm256_add_ps, MR, NV)
#define DKR256D(NAME, MR, NV)                                                                                    \
  MK_DEF_DKR(NAME, A256, double, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_fmadd_pd, _mm256_set1_pd, \
             _mm256_setzero_pd, _mm256_add_pd, MR, NV)
/* 256-bit vectors with the AVX-512 register file (32 ymm) */
#define DKR512Y(NAME, MR, NV)                                                                                  \
  MK_DEF_DKR(NAME, A512, float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_set1_ps, \
             _mm256_setzero_ps, _mm256_add_ps, MR, NV)
#define DKR512YD(NAME, MR, NV)                                                                                   \
  MK_DEF_DKR(NAME, A512, double, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_fmadd_pd, _mm256_set1_pd, \
             _mm256_setzero_pd, _mm256_add_pd, MR, NV)
/* row counts of a family: MR, then 8 (or 4), 4, 2, 1 */
#define DKR_FAMILY(DEF, PFX, MR, M2, NV) \
  DEF(PFX##_r0, MR, NV) DEF(PFX##_r1, M2, NV) DEF(PFX##_r2, 4, NV) DEF(PFX##_r3, 2, NV) DEF(PFX##_r4, 1, NV)
#define DKR_TABLE(PFX, NR, MR, M2)                                                  \
  {                                                                                 \
    NR, {                                                                           \
      {MR, PFX##_r0}, {M2, PFX##_r1}, {4, PFX##_r2}, {2, PFX##_r3}, { 1, PFX##_r4 } \
    }                                                                               \
  }

DKR_FAMILY(DKR512Y, dkr_f32_avx512_y1, 16, 8, 1)
DKR_FAMILY(DKR512S, dkr_f32_avx512_v1, 16, 8, 1)
DKR_FAMILY(DKR512S, dkr_f32_avx512_v2, 12, 8, 2)
DKR_FAMILY(DKR512YD, dkr_f64_avx512_y1, 16, 8, 1)
DKR_FAMILY(DKR512D, dkr_f64_avx512_v1, 16, 8, 1)
DKR_FAMILY(DKR512D, dkr_f64_avx512_v2, 12, 8, 2)
DKR_FAMILY(DKR256S, dkr_f32_avx2_v1, 12, 8, 1)
DKR_FAMILY(DKR256S, dkr_f32_avx2_v2, 6, 4, 2)
DKR_FAMILY(DKR256D, dkr_f64_avx2_v1, 12, 8, 1)
DKR_FAMILY(DKR256D, dkr_f64_avx2_v2, 6, 4, 2)

static const mk_direct_f32 d_f32_avx512[3] = {DKR_TABLE(dkr_f32_avx512_y1, 8, 16, 8),
                                              DKR_TABLE(dkr_f32_avx512_v1, 16, 16, 8),
                                              DKR_TABLE(dkr_f32_avx512_v2, 32, 12, 8)};
static const mk_direct_f64 d_f64_avx512[3] = {DKR_TABLE(dkr_f64_avx512_y1, 4, 16, 8),
                                              DKR_TABLE(dkr_f64_avx512_v1, 8, 16, 8),
                                              DKR_TABLE(dkr_f64_avx512_v2, 16, 12, 8)};
static const mk_direct_f32 d_f32_avx2[2] = {DKR_TABLE(dkr_f32_avx2_v1, 8, 12, 8), DKR_TABLE(dkr_f32_avx2_v2, 16, 6, 4)};
static const mk_direct_f64 d_f64_avx2[2] = {DKR_TABLE(dkr_f64_avx2_v1, 4, 12, 8), DKR_TABLE(dkr_f64_avx2_v2, 8, 6, 4)};

#define EDGES(...) \
  { __VA_ARGS__ }
static mk_kernel_f32 k_f32_avx512[] = {
    {14, 32, 168, 384, 4096, ukr_f32_avx512_14x32, "avx512 14x32",
     EDGES({4, ukr_f32_avx512_4x32_of14}, {8, ukr_f32_avx512_8x32_of14}, {11, ukr_f32_avx512_11x32_of14})},
    {12, 32, 144, 384, 4096, ukr_f32_avx512_12x32, "avx512 12x32", EDGES({0, 0})},
    {6, 32, 144, 384, 4096, ukr_f32_avx512_6x32, "avx512 6x32", EDGES({0, 0})},
    {8, 48, 144, 384, 4096, ukr_f32_avx512_8x48, "avx512 8x48", EDGES({0, 0})},
};
static const mk_kernel_f64 k_f64_avx512 = {12,
                                           16,
                                           120,
                                           256,
                                           2048,
                                           ukr_f64_avx512_12x16,
                                           "avx512 12x16",
                                           EDGES({4, ukr_f64_avx512_4x16_of12}, {8, ukr_f64_avx512_8x16_of12})};
static const mk_kernel_f32 k_f32_avx2 = {
    6, 16, 144, 256, 4096, ukr_f32_avx2_6x16, "avx2 6x16", EDGES({3, ukr_f32_avx2_3x16_of6})};
static const mk_kernel_f64 k_f64_avx2 = {
    6, 8, 96, 256, 2048, ukr_f64_avx2_6x8, "avx2 6x8", EDGES({3, ukr_f64_avx2_3x8_of6})};
#endif

#if defined(__x86_64__)
/* Development knobs (not part of the API): MOEKIT_GEMM_KERNEL selects an
 * alternative AVX-512 f32 kernel by index, MOEKIT_GEMM_MC/KC/NC override its
 * blocking. Used to tune; defaults are the measured best. */
static int env_int(const char *name, int dflt) {
  const char *s = getenv(name);
  return s && *s ? atoi(s) : dflt;
}

static int g_f32_avx512_idx = 0;
static void f32_avx512_init(void) {
  int idx = env_int("MOEKIT_GEMM_KERNEL", 0);
  if (idx < 0 || idx >= (int)(sizeof k_f32_avx512 / sizeof k_f32_avx512[0])) idx = 0;
  mk_kernel_f32 *k = &k_f32_avx512[idx];
  /* Where the core runs two 512-bit FMAs a cycle (Zen 5), a K block costs half the time it
   * did on Zen 4 while its C tile's reload and store cost the same, so with kc = 384 the C
   * traffic of the extra K passes weighs. One pass over K up to 1024 (the B panel then streams
   * from L2, which keeps up) is faster, plain GEMM and MoE layer alike. Zen 4 keeps the 384 it
   * was tuned with (docs/performance.md: native/gemm/gemm_kernels.c: f32_avx512_init). */
  if (mk_cpu_avx512_full_width()) k->kc = 1024;
  k->mc = env_int("MOEKIT_GEMM_MC", k->mc);
  k->kc = env_int("MOEKIT_GEMM_KC", k->kc);
  k->nc = env_int("MOEKIT_GEMM_NC", k->nc);
  g_f32_avx512_idx = idx;
}
#endif

const mk_kernel_f32 *mk_gemm_kernel_f32(mk_isa isa) {
#if defined(__aarch64__)
  if (isa == MK_ISA_NEON) return &mk_gemm_neon_f32;
#endif
#if defined(__x86_64__)
  if (isa == MK_ISA_AVX512) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, f32_avx512_init);
    return &k_f32_avx512[g_f32_avx512_idx];
  }
  if (isa == MK_ISA_AVX2) return &k_f32_avx2;
#endif
  (void)isa;
  return &k_f32_scalar;
}

const mk_kernel_f64 *mk_gemm_kernel_f64(mk_isa isa) {
#if defined(__aarch64__)
  if (isa == MK_ISA_NEON) return &mk_gemm_neon_f64;
#endif
#if defined(__x86_64__)
  if (isa == MK_ISA_AVX512) return &k_f64_avx512;
  if (isa == MK_ISA_AVX2) return &k_f64_avx2;
#endif
  (void)isa;
  return &k_f64_scalar;
}

/* The narrowest family whose panel holds n columns, else the widest. */
#define PICK_DIRECT(fams, n)                                                        \
  do {                                                                              \
    int i_ = 0;                                                                     \
    while (i_ + 1 < (int)(sizeof fams / sizeof fams[0]) && fams[i_].nr < (n)) i_++; \
    return &fams[i_];                                                               \
  } while (0)

const mk_direct_f32 *mk_gemm_direct_f32(mk_isa isa, int64_t n) {
#if defined(__aarch64__)
  if (isa == MK_ISA_NEON) return mk_gemm_neon_direct_f32(n);
#endif
#if defined(__x86_64__)
  if (isa == MK_ISA_AVX512) PICK_DIRECT(d_f32_avx512, n);
  if (isa == MK_ISA_AVX2) PICK_DIRECT(d_f32_avx2, n);
#endif
  (void)isa;
  (void)n;
  return NULL;
}

const mk_direct_f64 *mk_gemm_direct_f64(mk_isa isa, int64_t n) {
#if defined(__aarch64__)
  if (isa == MK_ISA_NEON) return mk_gemm_neon_direct_f64(n);
#endif
#if defined(__x86_64__)
  if (isa == MK_ISA_AVX512) PICK_DIRECT(d_f64_avx512, n);
  if (isa == MK_ISA_AVX2) PICK_DIRECT(d_f64_avx2, n);
#endif
  (void)isa;
  (void)n;
  return NULL;
}
