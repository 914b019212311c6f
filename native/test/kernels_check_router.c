/* The router pass (native/moe/router.c, included here for its row functions; its N-API
 * functions are dropped at link time): the softmax top-k forward against a double softmax and
 * a plain top-k, and the layer backward's dx rows of the ISA in use (the NEON or AVX-512 build)
 * against the generic build, bit for bit, and against a double sum. */
#include "router.c"

#include "kernels_check.h"

enum { T = 13, E = 8, K = 2, H = 3 * 32 + 7 };

static void check_forward(void) {
  float logits[T * E], scores[T * E], weights[T * K], lse[T];
  int32_t ids[T * K];
  kc_fill_f32(logits, T * E);
  for (int q = 0; q < T * E; q++) logits[q] *= 4;
  double *partial = calloc((size_t)PARTIAL_STRIDE(E, K), sizeof(double));
  int64_t *counts = calloc((size_t)COUNTS_STRIDE(E), sizeof(int64_t));
  mk_router_ctx c = {.logits = logits,
                     .scores = scores,
                     .weights = weights,
                     .lse = lse,
                     .ids = ids,
                     .E = E,
                     .K = K,
                     .renorm = 1,
                     .scale = 2.5,
                     .tasks = 1,
                     .partial = partial,
                     .partial_counts = counts};
  router_forward_chunk_f32(&c, 0, T, 0);
  int64_t want_counts[E] = {0};
  for (int t = 0; t < T; t++) {
    double m = -INFINITY, s = 0, p[E];
    for (int e = 0; e < E; e++) m = logits[t * E + e] > m ? logits[t * E + e] : m;
    for (int e = 0; e < E; e++) s += p[e] = exp((double)logits[t * E + e] - m);
    kc_close("router lse", t, lse[t], m + log(s), 1e-6);
    int top[K];
    for (int k = 0; k < K; k++) { /* the k-th largest, lower index first on ties */
      top[k] = -1;
      for (int e = 0; e < E; e++) {
        int taken = 0;
        for (int q = 0; q < k; q++) taken |= top[q] == e;
        if (!taken && (top[k] < 0 || p[e] > p[top[k]])) top[k] = e;
      }
    }
    double ws = 0;
    for (int k = 0; k < K; k++) ws += p[top[k]] / s;
    for (int k = 0; k < K; k++) {
      if (ids[t * K + k] != top[k]) kc_fail("router ids[%d] = %d, want %d", t * K + k, ids[t * K + k], top[k]);
      kc_close("router weights", t * K + k, weights[t * K + k], 2.5 * p[top[k]] / s / ws, 1e-6);
      want_counts[top[k]]++;
    }
    for (int e = 0; e < E; e++) kc_close("router scores", t * E + e, scores[t * E + e], p[e] / s, 1e-6);
  }
  for (int e = 0; e < E; e++)
    if (counts[e] != want_counts[e])
      kc_fail("router counts[%d] = %lld, want %lld", e, (long long)counts[e], (long long)want_counts[e]);
  free(partial);
  free(counts);
}

/* the row function router_layer_backward picks for f32 */
static mk_range_fn isa_rows_f32(void) {
#if defined(__x86_64__)
  if (mk_cpu_isa() >= MK_ISA_AVX512) return tail_rows_a512_f32;
#elif defined(__aarch64__)
  if (mk_cpu_isa() == MK_ISA_NEON) return tail_rows_neon_f32;
#endif
  return tail_rows_f32;
}

static void check_layer_backward(void) {
  float scores[T * E], lse[T], row_dw[T * K], wr[E * H], row_dx[T * K * H], dweights[T * K];
  float dl_generic[T * E], dl_isa[T * E], dx_generic[T * H], dx_isa[T * H];
  int32_t ids[T * K], slot_row[T * K];
  kc_fill_f32(scores, T * E);
  kc_fill_f32(lse, T);
  kc_fill_f32(row_dw, T * K);
  kc_fill_f32(wr, E * H);
  kc_fill_f32(row_dx, T * K * H);
  for (int q = 0; q < T * K; q++) {
    ids[q] = (q * 3 + q / K) % E;
    slot_row[q] = q % 5 == 3 ? -1 : (q * 7) % (T * K); /* some dropped slots */
  }
  mk_router_ctx c = {.scores = scores,
                     .lse = lse,
                     .ids = ids,
                     .dweights = dweights,
                     .dweights_fill = dweights,
                     .E = E,
                     .K = K,
                     .renorm = 1,
                     .scale = 1.5,
                     .z_coef = 0.01,
                     .slot_row = slot_row,
                     .row_dw = row_dw,
                     .wr = wr,
                     .row_dx = row_dx,
                     .H = H,
                     .rows = T};
  c.dlogits = dl_generic, c.dx = dx_generic;
  tail_rows_f32(&c, 0, T, 0);
  c.dlogits = dl_isa, c.dx = dx_isa;
  isa_rows_f32()(&c, 0, T, 0);
  if (memcmp(dl_generic, dl_isa, sizeof dl_isa) != 0) kc_fail("router layer backward: dlogits differ from generic");
  for (int t = 0, bad = 0; t < T && bad < 3; t++)
    for (int j = 0; j < H; j++) {
      double s = 0;
      for (int k = 0; k < K; k++)
        if (slot_row[t * K + k] >= 0) s += row_dx[slot_row[t * K + k] * H + j];
      for (int e = 0; e < E; e++) s += (double)dl_generic[t * E + e] * wr[e * H + j];
      bad += !kc_close("router layer backward dx", t * H + j, dx_isa[t * H + j], s, 1e-5);
      if (memcmp(&dx_isa[t * H + j], &dx_generic[t * H + j], sizeof(float)) != 0 && bad++ < 3)
        kc_fail("router layer backward dx at %d: %.9g, the generic build's %.9g (not bit-identical)", t * H + j,
                dx_isa[t * H + j], dx_generic[t * H + j]);
    }
}

void kc_check_router(void) {
  check_forward();
  check_layer_backward();
}
