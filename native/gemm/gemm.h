/*
 * Row-major GEMM, float32 and float64:
 *
 *   C[M,N] = (accumulate ? C : 0) + op(A)[M,K] . op(B)[K,N]
 *
 *   transA = 0: A stored [M,K], element (i,p) at A[i*lda + p]
 *   transA = 1: A stored [K,M], element (i,p) at A[p*lda + i]
 *   transB = 0: B stored [K,N], element (p,j) at B[p*ldb + j]
 *   transB = 1: B stored [N,K], element (p,j) at B[j*ldb + p]
 *   C element (i,j) at C[i*ldc + j].
 *
 * The batched form repeats this for b in [0, batch) with A + b*strideA,
 * B + b*strideB, C + b*strideC; a stride of 0 broadcasts that operand.
 * C blocks of different batch entries must not overlap.
 *
 * Work is spread over the mk_parallel_for pool (threadpool.h); the kernels
 * are picked at run time from mk_cpu_isa() (cpu.h). Skinny products (M or N
 * up to 32: MoE router logits and their gradients) take a direct path that
 * does not pack A. Summation order depends on the shape only, never on the
 * thread count, so results are bitwise reproducible. K == 0 gives C = 0 (or
 * leaves C unchanged when accumulating). NaN/Inf propagate as in a naive loop,
 * except that summation order differs.
 */
#ifndef MOEKIT_GEMM_H
#define MOEKIT_GEMM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void mk_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
              int64_t ldb, float *C, int64_t ldc, int accumulate);

void mk_dgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, const double *A, int64_t lda, const double *B,
              int64_t ldb, double *C, int64_t ldc, int accumulate);

void mk_sgemm_batched(int transA, int transB, int64_t batch, int64_t M, int64_t N, int64_t K, const float *A,
                      int64_t lda, int64_t strideA, const float *B, int64_t ldb, int64_t strideB, float *C, int64_t ldc,
                      int64_t strideC, int accumulate);

void mk_dgemm_batched(int transA, int transB, int64_t batch, int64_t M, int64_t N, int64_t K, const double *A,
                      int64_t lda, int64_t strideA, const double *B, int64_t ldb, int64_t strideB, double *C,
                      int64_t ldc, int64_t strideC, int accumulate);

#ifdef __cplusplus
}
#endif

#endif
