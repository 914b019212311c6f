/* The bf16 conversions and pair packs (native/gemm/bf16_pack.h) of the ISA in use against their
 * definitions, bit for bit: f32 -> bf16 by the scalar rule (ties to even, NaN payloads of both
 * signs -> 0xffff, infinities, denormals, the carry into the exponent), bf16 -> f32 as a shift,
 * at every length 0..67 so that each vector loop's tail and masked lanes run; the pair packs for
 * the panel widths of the kernels (8, 14, 16, 32), partial panels and odd K, with the output
 * poisoned first so that an unwritten zero column shows. */
#include <stdlib.h>
#include <string.h>

#include "bf16_pack.h"
#include "kernels_check.h"

enum { N = 67, SPECIALS = 24 };

/* bit patterns the rule treats apart; the rest of each array is from an LCG of its own */
static const uint32_t SPECIAL[SPECIALS] = {
    0x7f800001u, 0xffc00000u, 0x7fc12345u, 0xff812345u, 0x7fffffffu, 0xffffffffu, /* NaN payloads */
    0x7f800000u, 0xff800000u, 0x7f7fffffu, 0xff7fffffu,                           /* inf, max (rounds to inf) */
    0x00000001u, 0x80000001u, 0x007fffffu, 0x00008000u, 0x00018000u, 0x80000000u, /* denormals, -0 */
    0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f807fffu,                           /* ties to even, off ties */
    0x3fffffffu, 0x477fefffu, 0x00000000u, 0xbf800000u};

static uint32_t lcg(void) {
  static uint32_t s = 777;
  s = s * 1664525u + 1013904223u;
  return s;
}

static void check_conversions(void) {
  uint32_t bits[N];
  uint16_t h[N], got16[N + 1], want16[N];
  float f[N], gotf[N + 1];
  for (int i = 0; i < N; i++) {
    bits[i] = i < SPECIALS ? SPECIAL[i] : lcg();
    memcpy(f + i, bits + i, 4);
    h[i] = (uint16_t)(i < SPECIALS ? bits[i] >> 16 : lcg());
  }
  for (int n = 0; n <= N; n++)
    for (int off = 0; off < 2 && off < N - n + 1; off++) {
      const int m = n - off;
      if (m < 0) continue;
      /* narrow */
      memset(got16, 0xab, sizeof got16);
      mk_bf16_narrow(f + off, m, got16);
      for (int i = 0; i < m; i++) want16[i] = mk_bf16_from_bits(bits[off + i]);
      if (memcmp(got16, want16, 2 * (size_t)m) || got16[m] != 0xabab)
        kc_fail("mk_bf16_narrow: length %d offset %d differs from the scalar rule (or wrote past n)", m, off);
      /* scaled, from f32 and from bf16 */
      const float sc = -1.5f;
      for (int src_bf16 = 0; src_bf16 < 2; src_bf16++) {
        memset(got16, 0xab, sizeof got16);
        mk_bf16_narrow_scaled(src_bf16 ? (const void *)(h + off) : (const void *)(f + off), src_bf16, sc, m, got16);
        for (int i = 0; i < m; i++)
          want16[i] = mk_bf16_from_f32(sc * (src_bf16 ? mk_bf16_to_f32(h[off + i]) : f[off + i]));
        if (memcmp(got16, want16, 2 * (size_t)m) || got16[m] != 0xabab)
          kc_fail("mk_bf16_narrow_scaled (%s source): length %d offset %d differs", src_bf16 ? "bf16" : "f32", m, off);
      }
      /* widen */
      memset(gotf, 0xab, sizeof gotf);
      mk_bf16_widen(h + off, m, gotf);
      for (int i = 0; i < m; i++) {
        uint32_t g;
        memcpy(&g, gotf + i, 4);
        if (g != (uint32_t)h[off + i] << 16) {
          kc_fail("mk_bf16_widen: length %d offset %d, element %d: 0x%08x for 0x%04x", m, off, i, g, h[off + i]);
          break;
        }
      }
      uint32_t past;
      memcpy(&past, gotf + m, 4);
      if (past != 0xababababu) kc_fail("mk_bf16_widen: length %d wrote past its end", m);
    }
}

/* out[q*width + i] as the header defines each pack */
static uint32_t pair(const uint16_t *lo, const uint16_t *hi, int64_t at) {
  return (uint32_t)lo[at] | (hi ? (uint32_t)hi[at] << 16 : 0);
}

static void check_pair_packs(void) {
  enum { ROWS = 40, LD = 77 };
  uint16_t *src = malloc(sizeof(uint16_t) * ROWS * LD);
  uint32_t *got = malloc(sizeof(uint32_t) * 64 * 32), *want = malloc(sizeof(uint32_t) * 64 * 32);
  for (int i = 0; i < ROWS * LD; i++) src[i] = (uint16_t)(lcg() >> 7);
  const int widths[] = {8, 14, 16, 32};
  const int64_t ks[] = {1, 2, 7, 32, 33, 70};
  for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
    const int width = widths[wi];
    for (int h = 0; h <= width; h += h < 3 || h >= width - 2 ? 1 : 5) {
      for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        const int64_t kc = ks[ki], steps = (kc + 1) / 2;
        /* rows holding K: row i of the panel is source row (3i + 1) % ROWS from column 5 (odd: unaligned pairs) */
        const uint16_t *rows[32];
        for (int i = 0; i < h; i++) rows[i] = src + ((3 * i + 1) % ROWS) * LD + 5;
        for (int64_t q = 0; q < steps; q++)
          for (int i = 0; i < width; i++)
            want[q * width + i] =
                i >= h ? 0 : (uint32_t)rows[i][2 * q] | (2 * q + 1 < kc ? (uint32_t)rows[i][2 * q + 1] << 16 : 0);
        memset(got, 0x5a, sizeof(uint32_t) * 64 * 32);
        mk_bf16_pairs_from_rows(rows, h, kc, width, got);
        if (memcmp(got, want, sizeof(uint32_t) * (size_t)(steps * width)) || got[steps * width] != 0x5a5a5a5au)
          kc_fail("mk_bf16_pairs_from_rows: width %d, %d rows, K %lld differs from its definition", width, h,
                  (long long)kc);
      }
      /* two rows holding the panel's columns, with and without the high row */
      for (int with_hi = 0; with_hi < 2; with_hi++) {
        const uint16_t *lo = src + 7 * LD + 3, *hi = with_hi ? src + 11 * LD + 3 : NULL;
        for (int i = 0; i < width; i++) want[i] = i < h ? pair(lo, hi, i) : 0;
        memset(got, 0x5a, sizeof(uint32_t) * (size_t)(width + 1));
        mk_bf16_pairs_interleave(lo, hi, h, width, got);
        if (memcmp(got, want, sizeof(uint32_t) * (size_t)width) || got[width] != 0x5a5a5a5au)
          kc_fail("mk_bf16_pairs_interleave: width %d, %d columns, high row %d differs", width, h, with_hi);
      }
    }
  }
  free(src), free(got), free(want);
}

void kc_check_bf16(void) {
  check_conversions();
  check_pair_packs();
}
