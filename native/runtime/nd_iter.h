/*
 * Walking an N-d box in row-major order with up to 3 operand stride sets
 * (broadcast strides may be 0). Used by binary / where / permute / slices.
 *
 * mk_nd_collapse drops size-1 dims and merges neighbours that are contiguous
 * for every operand, so most calls become 1-D or 2-D loops; the innermost dim
 * is then walked as a run (mk_nd_iter_run) by a typed row kernel.
 */
#ifndef MOEKIT_ND_ITER_H
#define MOEKIT_ND_ITER_H

#include <stdint.h>

#include "kernel_util.h"

typedef struct {
  int rank, nops;
  int64_t shape[MK_MAX_RANK];
  int64_t st[3][MK_MAX_RANK];
} mk_nd_layout;

typedef struct {
  int64_t idx[MK_MAX_RANK];
  int64_t off[3];
} mk_nd_iter;

/* In place; leaves rank >= 1 (a lone dim of 1 for a 0-d box). */
static inline void mk_nd_collapse(mk_nd_layout *l) {
  int r = 0;
  for (int ax = 0; ax < l->rank; ax++) {
    if (l->shape[ax] == 1) continue;
    if (r > 0) {
      int merge = 1;
      for (int k = 0; k < l->nops; k++)
        if (l->st[k][r - 1] != l->st[k][ax] * l->shape[ax]) merge = 0;
      if (merge) {
        l->shape[r - 1] *= l->shape[ax];
        for (int k = 0; k < l->nops; k++) l->st[k][r - 1] = l->st[k][ax];
        continue;
      }
    }
    l->shape[r] = l->shape[ax];
    for (int k = 0; k < l->nops; k++) l->st[k][r] = l->st[k][ax];
    r++;
  }
  if (r == 0) {
    l->shape[0] = 1;
    for (int k = 0; k < l->nops; k++) l->st[k][0] = 0;
    r = 1;
  }
  l->rank = r;
}

/* Position the iterator at flat (row-major) index pos. */
static inline void mk_nd_iter_init(mk_nd_iter *it, const mk_nd_layout *l, int64_t pos) {
  for (int k = 0; k < 3; k++) it->off[k] = 0;
  for (int ax = l->rank - 1; ax >= 0; ax--) {
    int64_t i = pos % l->shape[ax];
    pos /= l->shape[ax];
    it->idx[ax] = i;
    for (int k = 0; k < l->nops; k++) it->off[k] += i * l->st[k][ax];
  }
}

/* Elements left in the current innermost run, capped at max. */
static inline int64_t mk_nd_iter_run(const mk_nd_iter *it, const mk_nd_layout *l, int64_t max) {
  int64_t left = l->shape[l->rank - 1] - it->idx[l->rank - 1];
  return left < max ? left : max;
}

/* Step len elements along the innermost dim (len <= the run), carrying over. */
static inline void mk_nd_iter_advance(mk_nd_iter *it, const mk_nd_layout *l, int64_t len) {
  int ax = l->rank - 1;
  it->idx[ax] += len;
  for (int k = 0; k < l->nops; k++) it->off[k] += len * l->st[k][ax];
  while (it->idx[ax] == l->shape[ax] && ax > 0) {
    for (int k = 0; k < l->nops; k++) it->off[k] -= l->shape[ax] * l->st[k][ax];
    it->idx[ax] = 0;
    ax--;
    it->idx[ax]++;
    for (int k = 0; k < l->nops; k++) it->off[k] += l->st[k][ax];
  }
}

/*
 * Largest element offset + 1 an operand with strides st reaches over shape
 * (0 for an empty box; -1 on overflow), for bounds checks. Strides >= 0.
 */
static inline int64_t mk_nd_span(const int64_t *shape, const int64_t *st, int rank) {
  int64_t hi = 0, t;
  for (int ax = 0; ax < rank; ax++)
    if (shape[ax] == 0) return 0;
  for (int ax = 0; ax < rank; ax++)
    if (__builtin_mul_overflow(shape[ax] - 1, st[ax], &t) || __builtin_add_overflow(hi, t, &hi)) return -1;
  return hi + 1;
}

#endif
