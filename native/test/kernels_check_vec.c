/* The f32 vector kernels of the ISA in use (native/ops/vec_f32.h; none on scalar): the exp rows
 * of softmax and cross-entropy and GELU (erf and tanh forms) with its gradient, against libm in
 * double, at widths that leave tails, over the whole float range (underflow to 0 and subnormals,
 * overflow to inf, NaN, ±0). Tolerances in float ulps of the double value: the exp ~1 ulp
 * (vec_exp.h), GELU a few ulp of x·Φ(x), computed with erfc so that its tiny negative tail is
 * held to relative accuracy too; gradients a few ulp of the sum of their terms' magnitudes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_check.h"
#include "vec_f32.h"

static const int64_t WIDTHS[] = {1, 3, 4, 7, 8, 15, 16, 17, 64, 100};
static const double PI = 3.14159265358979323846;

/* |got - want| within ulps of scale (a float ulp of 2^-24 relative); NaN wants NaN, a want
 * beyond the float range wants its infinity */
static void within(const char *what, int64_t at, float got, double want, double scale, double ulps) {
  if (isnan(want) || isinf((float)want)) {
    if (isnan(want) ? isnan(got) : got == (float)want) return;
    kc_fail("%s at %lld: got %.9g, want %.9g", what, (long long)at, (double)got, want);
    return;
  }
  /* below 2^-126 the float steps are 2^-149 apart: a few of them, from the intermediates */
  const double tol = ulps * fmax(fabs(scale) * 0x1p-24, 0x1p-146);
  if (fabs((double)got - want) <= tol) return; /* NaN got fails */
  kc_fail("%s at %lld: got %.9g, want %.17g (tolerance %.3g)", what, (long long)at, (double)got, want, tol);
}

/* inputs over the float range: a dense sweep of [-16, 16], big and tiny magnitudes, and specials */
static int64_t gelu_inputs(float *x) {
  int64_t n = 0;
  for (int i = -1600; i <= 1600; i++) x[n++] = (float)i / 100.0f + 0.003f;
  const float special[] = {0.0f,  -0.0f,  1e-30f, -1e-30f, 1e-40f, -3.0f,   -9.5f,    -13.7f,   -14.5f,    -30.0f,
                           30.0f, -1e10f, 1e10f,  -1e20f,  1e20f,  3.4e38f, -3.4e38f, INFINITY, -INFINITY, NAN};
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) x[n++] = special[i];
  return n;
}

static double phi_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

static void check_gelu(const mk_vec_f32_kernels *vk) {
  float *x = malloc(sizeof(float) * 3300), *y = malloc(sizeof(float) * 3300), *dx = malloc(sizeof(float) * 3300);
  float *h = malloc(sizeof(float) * 3300), *dy = malloc(sizeof(float) * 3300);
  const int64_t n = gelu_inputs(x);
  for (int64_t i = 0; i < n; i++) dy[i] = (float)(0.5 + kc_rand());
  for (int tanh_form = 0; tanh_form < 2; tanh_form++) {
    const char *fwd = tanh_form ? "gelu_tanh" : "gelu", *bwd = tanh_form ? "gelu_tanh dx" : "gelu dx";
    vk->gelu(x, y, n, tanh_form);
    const float w = 0.75f;
    vk->gelu_backward(x, dy, w, dx, h, n, tanh_form);
    for (int64_t i = 0; i < n; i++) {
      const double v = x[i];
      double g, d, dscale, gscale;
      if (tanh_form) {
        /* 0.5·(1 + tanh u) = 1 / (1 + e^(-2u)) without the cancellation of 1 + tanh u < 0 */
        const double k = sqrt(2.0 / PI), u = k * (v + 0.044715 * v * v * v), s = 1 / (1 + exp(-2 * u));
        const double du = k * (1 + 3 * 0.044715 * v * v), sech2 = 4 * s * (1 - s);
        g = v * s;
        d = s + 0.5 * v * sech2 * du;
        dscale = fabs(s) + fabs(0.5 * v * sech2 * du);
        if (isinf(v)) d = NAN, g = v > 0 ? v : NAN; /* as the double form: ±inf·0 */
        /* the argument of σ is rounded in float: |2u|·(1 - σ) amplifies it */
        const double cond = 1 + fabs(2 * u) * (1 - s);
        gscale = g * cond;
        /* σ is subnormal below x ~ -10: its 2^-149 steps, times x·2u' */
        dscale = dscale * cond + fabs(v * du) * 0x1p-126;
      } else {
        const double p = phi_cdf(v), e = exp(-0.5 * v * v) / sqrt(2 * PI);
        g = v * p;
        d = p + v * e;
        dscale = fabs(p) + fabs(v * e);
        if (isinf(v)) d = NAN, g = v > 0 ? v : NAN; /* as the double form: ±inf·0 */
        gscale = g;
      }
      within(fwd, i, y[i], g, gscale, 8);
      within(tanh_form ? "gelu_tanh h" : "gelu h", i, h[i], g, gscale, 8);
      within(bwd, i, dx[i], (double)(w * dy[i]) * d, (double)(w * dy[i]) * dscale, 8);
    }
  }
  /* the dot of the backward, where every value is finite */
  for (int tanh_form = 0; tanh_form < 2; tanh_form++)
    for (size_t wi = 0; wi < sizeof WIDTHS / sizeof WIDTHS[0]; wi++) {
      const int64_t m = WIDTHS[wi];
      float xs[100], d[100], dxs[100];
      double want = 0, scale = 0;
      for (int64_t i = 0; i < m; i++) {
        xs[i] = (float)(6 * kc_rand()), d[i] = (float)kc_rand();
        const double v = xs[i];
        const double g = tanh_form ? v / (1 + exp(-2 * sqrt(2.0 / PI) * (v + 0.044715 * v * v * v))) : v * phi_cdf(v);
        want += d[i] * g, scale += fabs(d[i] * g);
      }
      const double got = vk->gelu_backward(xs, d, 1.0f, dxs, NULL, m, tanh_form);
      within(tanh_form ? "gelu_tanh dot" : "gelu dot", m, (float)got, want, scale, 16);
    }
  free(x), free(y), free(dx), free(h), free(dy);
}

/* a row spread over [-lo, 0] below its max, with -inf, huge and subnormal-producing gaps */
static void exp_row(float *x, int64_t n, double spread) {
  for (int64_t i = 0; i < n; i++) x[i] = (float)(spread * kc_rand());
  if (n > 2) x[1] = -INFINITY, x[n - 1] = x[0] - 95.0f; /* e^-95: a subnormal float */
}

static void check_exp_rows(const mk_vec_f32_kernels *vk) {
  for (size_t wi = 0; wi < sizeof WIDTHS / sizeof WIDTHS[0]; wi++) {
    const int64_t n = WIDTHS[wi];
    float x[100], y[100], dy[100], dx[100];
    for (int spread = 0; spread < 2; spread++) {
      exp_row(x, n, spread ? 60 : 4);
      float m = -INFINITY;
      for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
      if (vk->max(x, n) != m) kc_fail("row max width %lld: got %.9g, want %.9g", (long long)n, vk->max(x, n), m);
      /* the difference x - m is rounded in float, as the rows compute it */
      double want = 0;
      for (int64_t i = 0; i < n; i++) want += exp((double)(x[i] - m));
      kc_close("sum_exp", n, vk->sum_exp(x, n, m), want, 4e-7);
      kc_close("exp_store sum", n, vk->exp_store(x, n, m, y), want, 4e-7);
      for (int64_t i = 0; i < n; i++) {
        const double e = exp((double)(x[i] - m));
        within("exp_store", i, y[i], e, e, 2);
      }
      kc_fill_f32(dy, n);
      const float c = 0.25f, g = -1.5f;
      vk->sub_exp_mul(dy, x, n, c, g, dx);
      for (int64_t i = 0; i < n; i++) {
        const double e = exp((double)(x[i] - c));
        within("sub_exp_mul", i, dx[i], dy[i] - e * g, fabs(dy[i]) + fabs(e * g), 3);
      }
      vk->sub_exp_mul(NULL, x, n, c, g, dx);
      for (int64_t i = 0; i < n; i++) {
        const double e = exp((double)(x[i] - c));
        within("sub_exp_mul (no dy)", i, dx[i], -e * g, e * g, 2);
      }
    }
  }
  /* the exponent's ends: overflow to inf, underflow through the subnormals to 0, NaN */
  float x[16], y[16];
  const float ends[16] = {88.72f,  88.73f,  89.5f,  1e30f,     INFINITY, -87.3f, -100.0f, -103.0f,
                          -103.9f, -104.5f, -1e30f, -INFINITY, NAN,      0.0f,   -0.0f,   1e-30f};
  memcpy(x, ends, sizeof x);
  vk->exp_store(x, 16, 0.0f, y);
  for (int i = 0; i < 16; i++) within("exp range", i, y[i], exp((double)x[i]), exp((double)x[i]), 2);
}

void kc_check_vec(void) {
  const mk_vec_f32_kernels *vk = mk_vec_f32();
  if (!vk) return; /* scalar: the rows use libm */
  check_exp_rows(vk);
  check_gelu(vk);
}
