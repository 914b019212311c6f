/* The f32 SwiGLU of the ISA in use (moe_act.c, moe_act_avx2.c, moe_act_neon.c): the forward row
 * pass, the tile epilogue and the backward row pass (row weights, the <dy, h> dot, the
 * recomputed h written over dy, gradients written over gu), against double loops, at widths
 * that leave tails and with gate values from -100 to 100 (the exponent's clamp). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_check.h"
#include "moe.h"

enum { ROWS = 5 };
static const int64_t WIDTHS[] = {1, 7, 8, 13, 16, 37};
static const double TOL = 2e-6;

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

/* gate / up rows, ld = 2I + 3: gate at 0, up at I + 3; gates spread over [-12, 12), two extremes */
static float *gate_up(int64_t I, int64_t ld) {
  float *gu = malloc(sizeof(float) * (size_t)(ROWS * ld));
  kc_fill_f32(gu, ROWS * ld);
  for (int64_t r = 0; r < ROWS; r++)
    for (int64_t q = 0; q < I; q++) gu[r * ld + q] *= 12;
  gu[0] = 100, gu[ld + I - 1] = -100;
  return gu;
}

static void check_width(int64_t I) {
  const int64_t ld = 2 * I + 3, uoff = I + 3;
  float *gu = gate_up(I, ld), *h = malloc(sizeof(float) * (size_t)(ROWS * I));
  const mk_moe_act fwd = {.gu = gu, .ld = ld, .goff = 0, .uoff = uoff, .cs = 1, .I = I, .h = h};
  mk_moe_act_run(MK_ACT_SWIGLU_FWD, &fwd, ROWS);
  float *tile = malloc(sizeof(float) * (size_t)(ROWS * I));
  mk_moe_epilogue_f32(MK_EPI_SWIGLU)(gu, gu + uoff, ld, tile, I, ROWS, I);
  for (int64_t r = 0; r < ROWS; r++)
    for (int64_t q = 0; q < I; q++) {
      const double g = gu[r * ld + q], u = gu[r * ld + uoff + q], want = g * sigmoid(g) * u;
      kc_close("swiglu fwd rows", r * I + q, h[r * I + q], want, TOL);
      kc_close("swiglu fwd tile", r * I + q, tile[r * I + q], want, TOL);
    }

  /* backward in place: dgu = gu, hout = dy */
  float *dy = malloc(sizeof(float) * (size_t)(ROWS * I)), w[ROWS], dw[ROWS];
  kc_fill_f32(dy, ROWS * I);
  kc_fill_f32(w, ROWS);
  float *gu0 = malloc(sizeof(float) * (size_t)(ROWS * ld)), *dy0 = malloc(sizeof(float) * (size_t)(ROWS * I));
  memcpy(gu0, gu, sizeof(float) * (size_t)(ROWS * ld));
  memcpy(dy0, dy, sizeof(float) * (size_t)(ROWS * I));
  const mk_moe_act bwd = {
      .gu = gu, .ld = ld, .goff = 0, .uoff = uoff, .cs = 1, .I = I, .dy = dy, .w = w, .dgu = gu, .hout = dy, .dw = dw};
  mk_moe_act_run(MK_ACT_SWIGLU_BWD, &bwd, ROWS);
  for (int64_t r = 0; r < ROWS; r++) {
    double dot = 0, scale = 0;
    for (int64_t q = 0; q < I; q++) {
      const double g = gu0[r * ld + q], u = gu0[r * ld + uoff + q], d = dy0[r * I + q], sg = sigmoid(g);
      const double hv = g * sg * u, dh = w[r] * d;
      dot += d * hv, scale += fabs(d * hv);
      kc_close("swiglu bwd h", r * I + q, dy[r * I + q], hv, TOL);
      kc_close("swiglu bwd dgate", r * I + q, gu[r * ld + q], dh * u * sg * (1 + g * (1 - sg)), TOL);
      kc_close("swiglu bwd dup", r * I + q, gu[r * ld + uoff + q], dh * g * sg, TOL);
    }
    kc_close("swiglu bwd dw", r, dw[r], dot, TOL * (1 + scale));
  }
  free(gu), free(h), free(tile), free(dy), free(gu0), free(dy0);
}

void kc_check_act(void) {
  for (int round = 0; round < 40; round++) /* fresh values each round: the error peaks at few inputs */
    for (size_t i = 0; i < sizeof WIDTHS / sizeof WIDTHS[0]; i++) check_width(WIDTHS[i]);
}
