/* The grouped GEMMs' bf16 operand packs (native/moe/moe_bf16.h) against panels built here from
 * the header's formulas, bit for bit: both modes (rows, wgrad), bf16 and f32 sources, gathered and
 * scaled rows, pairs (bf16 bits, what the VDPBF16PS kernel reads) and widened (f32) panels, K across
 * the packs' 256-element chunks and odd, partial panels, and B wide enough to cross the wgrad
 * packs' 1024-column passes. The output is poisoned first, so an unwritten pad shows. */
#include <stdlib.h>
#include <string.h>

#include "bf16_pack.h"
#include "kernels_check.h"
#include "moe_bf16.h"

enum { SRC_ROWS = 50, LD = 1100 };

static uint32_t state = 4242;
static uint32_t next(void) {
  state = state * 1664525u + 1013904223u;
  return state;
}

/* op element as the panel holds it: the stored bits, or rounded to bf16 (f32 source or scaled) in
 * pairs mode; its f32 value (times sc) in widened mode */
static uint32_t elem(const mk_moe_src *s, int64_t row, int64_t col, const float *sc, int pairs) {
  const int64_t at = row * s->ld + col;
  const uint16_t h = s->half ? ((const uint16_t *)s->p)[at] : 0;
  float v = s->half ? mk_bf16_to_f32(h) : ((const float *)s->p)[at];
  if (sc) v = *sc * v;
  if (pairs) return s->half && !sc ? h : mk_bf16_from_f32(v);
  uint32_t b;
  memcpy(&b, &v, 4);
  return b;
}

/* panel element (column c of `width`, K element p) at its place: pairs put K 2q, 2q+1 in one word */
static void put(uint32_t *want, int64_t steps, int width, int64_t c, int64_t p, uint32_t v, int pairs) {
  uint32_t *w = want + (c / width) * width * steps + (pairs ? p / 2 : p) * width + c % width;
  *w |= pairs && (p & 1) ? v << 16 : v;
}

static void compare(const char *what, const uint32_t *got, const uint32_t *want, int64_t n, int wgrad, int half,
                    int gather, int scaled, int pairs, int64_t kc) {
  if (memcmp(got, want, 4 * (size_t)n) || got[n] != 0xdeadbeefu)
    kc_fail("%s: wgrad %d half %d gather %d scaled %d pairs %d kc %lld differs from its formula", what, wgrad, half,
            gather, scaled, pairs, (long long)kc);
}

void kc_check_moe_bf16(void) {
  uint16_t *h = malloc(sizeof(uint16_t) * SRC_ROWS * LD);
  float *f = malloc(sizeof(float) * SRC_ROWS * LD), sc[SRC_ROWS];
  int32_t idx[SRC_ROWS];
  for (int i = 0; i < SRC_ROWS * LD; i++) {
    const uint32_t b = next();
    memcpy(f + i, &b, 4);
    if ((b & 0x7f800000u) == 0x7f800000u) f[i] = 1.5f; /* no NaN / inf: scaled products stay comparable */
    h[i] = (uint16_t)(next() >> 8) & 0xbfff;           /* no bf16 NaN / inf either */
  }
  for (int r = 0; r < SRC_ROWS; r++) {
    sc[r] = (float)((int)(next() % 2001) - 1000) / 333.0f;
    idx[r] = (int32_t)((r * 17 + 5) % SRC_ROWS);
  }
  const int64_t cap = 64 * 1100;
  uint32_t *got = malloc(4 * (size_t)(cap + 1)), *want = malloc(4 * (size_t)cap);
  const int64_t ks[] = {1, 6, 33, 300};
  for (int pairs = 0; pairs < 2; pairs++) {
    const int mr = pairs ? 14 : 6, nr = pairs ? 32 : 16;
    for (int v = 0; v < 8; v++) {
      const int half = v & 1, gather = (v >> 1) & 1, scaled = (v >> 2) & 1;
      const mk_moe_src a = {half ? (const void *)h : (const void *)f, half, gather ? idx : NULL, scaled ? sc : NULL,
                            LD};
      for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        const int64_t kc = ks[ki], steps = pairs ? (kc + 1) / 2 : kc;
        for (int wgrad = 0; wgrad < 2; wgrad++) {
          /* A: mc rows (partial last panel); s0, m0, pc offsets; wgrad K runs over the sorted rows, so kc <= rows */
          const int64_t s0 = 2, m0 = 3, pc = wgrad ? 1 : 5, mc = 17;
          if (wgrad && s0 + pc + kc > SRC_ROWS) continue;
          const int64_t n = (mc + mr - 1) / mr * mr * steps;
          memset(want, 0, 4 * (size_t)n);
          for (int64_t i = 0; i < mc; i++)
            for (int64_t p = 0; p < kc; p++) {
              const int64_t r = wgrad ? s0 + pc + p : s0 + m0 + i, row = gather ? idx[r] : r;
              put(want, steps, mr, i, p, elem(&a, row, wgrad ? m0 + i : pc + p, scaled ? sc + r : NULL, pairs), pairs);
            }
          memset(got, 0xef, 4 * (size_t)(n + 1));
          got[n] = 0xdeadbeefu;
          mk_moe_pack_a_mixed(wgrad, &a, s0, m0, mc, pc, kc, mr, pairs, (float *)got);
          compare("mk_moe_pack_a_mixed", got, want, n, wgrad, half, gather, scaled, pairs, kc);
        }
        if (scaled) continue;                  /* B has no scale */
        for (int mode = 0; mode < 3; mode++) { /* 0: rows, B [K, N]; 1: rows, B [N, K]; 2: wgrad (gathered rows) */
          const int wgrad = mode == 2, trans = mode == 1;
          const int64_t off = 7, s0 = 1, n0 = 2, pc = wgrad ? 3 : 4;
          const int64_t nc = trans ? 40 : 1030; /* [K, N] and wgrad: wider than one 1024-column pass */
          if ((wgrad && s0 + pc + kc > SRC_ROWS) || (!trans && !wgrad && pc + kc > SRC_ROWS) ||
              (trans && n0 + nc > SRC_ROWS))
            continue;
          const mk_moe_src b = {half ? (const void *)h : (const void *)f, half, gather ? idx : NULL, NULL, LD};
          const mk_moe_src bo = {half ? (const void *)(h + off) : (const void *)(f + off), half, NULL, NULL, LD};
          const int64_t n = (nc + nr - 1) / nr * nr * steps;
          if (n > cap) continue;
          memset(want, 0, 4 * (size_t)n);
          for (int64_t j = 0; j < nc; j++)
            for (int64_t p = 0; p < kc; p++) {
              const int64_t r = s0 + pc + p, row = wgrad ? (gather ? idx[r] : r) : trans ? n0 + j : pc + p;
              put(want, steps, nr, j, p, elem(&bo, row, trans ? pc + p : n0 + j, NULL, pairs), pairs);
            }
          memset(got, 0xef, 4 * (size_t)(n + 1));
          got[n] = 0xdeadbeefu;
          mk_moe_pack_b_mixed(wgrad, trans, &b, off, s0, n0, nc, pc, kc, nr, pairs, (float *)got);
          compare(trans ? "mk_moe_pack_b_mixed (B [N, K])" : "mk_moe_pack_b_mixed", got, want, n, wgrad, half, gather,
                  0, pairs, kc);
        }
      }
    }
  }
  free(h), free(f), free(got), free(want);
}
