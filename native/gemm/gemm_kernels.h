/*
 * GEMM micro-kernels (internal to gemm.c).
 *
 * A micro-kernel computes one MR x NR block of C from packed panels:
 *   a: kc steps of MR values of op(A) (column p of the MR-row panel, contiguous)
 *   b: kc steps of NR values of op(B) (row p of the NR-column panel, contiguous)
 *   C[i*ldc + j] = (load_c ? C[i*ldc + j] : 0) + sum_p a[p*MR + i] * b[p*NR + j]
 * Packed panels are 64-byte aligned and zero-padded to full MR / NR.
 *
 * mc / kc / nc are the cache blocks the driver uses with that kernel:
 * an mc x kc block of A stays in L2, kc x nc of B in L3, kc x NR in L1 (Zen 4; on Zen 5
 * kc is 1024 and the kc x NR panel streams from L2: gemm_kernels.c, f32_avx512_init).
 */
#ifndef MOEKIT_GEMM_KERNELS_H
#define MOEKIT_GEMM_KERNELS_H

#include <stdint.h>

#include "cpu.h"

typedef void (*mk_ukr_f32)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load_c);
typedef void (*mk_ukr_f64)(int64_t kc, const double *a, const double *b, double *c, int64_t ldc, int load_c);

/* Row-edge variants: `rows` < MR rows computed from a panel packed for MR
 * (so a panel with few valid rows does not pay for the zero padding).
 * Listed by increasing rows; rows == 0 ends the list. */
#define MK_MAX_EDGES 3

typedef struct {
  int mr, nr, mc, kc, nc;
  mk_ukr_f32 fn;
  const char *name;
  struct {
    int rows;
    mk_ukr_f32 fn;
  } edge[MK_MAX_EDGES];
} mk_kernel_f32;

typedef struct {
  int mr, nr, mc, kc, nc;
  mk_ukr_f64 fn;
  const char *name;
  struct {
    int rows;
    mk_ukr_f64 fn;
  } edge[MK_MAX_EDGES];
} mk_kernel_f64;

const mk_kernel_f32 *mk_gemm_kernel_f32(mk_isa isa);
const mk_kernel_f64 *mk_gemm_kernel_f64(mk_isa isa);

/*
 * Direct micro-kernels, for skinny GEMMs (small M or N) where packing an
 * operand costs as much as the product: A is read in place through two strides,
 *   C[i*ldc + j] = (load_c ? C[i*ldc + j] : 0) + sum_p a[i*ars + p*acs] * b[p*ldb + j]
 * for i < rows, j < nr, p < k; every row of b holds nr readable values
 * (in place, or a zero-padded packed panel). A family has one nr and kernels
 * for several row counts, by decreasing rows, the last one for 1 row, so any
 * row count is covered exactly by a few calls.
 */
#define MK_DIRECT_VARIANTS 5

typedef void (*mk_dkr_f32)(int64_t k, const float *a, int64_t ars, int64_t acs, const float *b, int64_t ldb, float *c,
                           int64_t ldc, int load_c);
typedef void (*mk_dkr_f64)(int64_t k, const double *a, int64_t ars, int64_t acs, const double *b, int64_t ldb,
                           double *c, int64_t ldc, int load_c);

typedef struct {
  int nr;
  struct {
    int rows;
    mk_dkr_f32 fn;
  } by_rows[MK_DIRECT_VARIANTS];
} mk_direct_f32;

typedef struct {
  int nr;
  struct {
    int rows;
    mk_dkr_f64 fn;
  } by_rows[MK_DIRECT_VARIANTS];
} mk_direct_f64;

/* The family for n columns: the narrowest whose panel holds n, else the
 * widest. NULL where the ISA has none (scalar): use the packed path. */
const mk_direct_f32 *mk_gemm_direct_f32(mk_isa isa, int64_t n);
const mk_direct_f64 *mk_gemm_direct_f64(mk_isa isa, int64_t n);

#endif
