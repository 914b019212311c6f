/*
 * Layout kernels; JS exports (outputs preallocated):
 *   permute(x, shape, perm, out)
 *   sliceCopy(x, shape, starts, sizes, out)
 *   sliceAddInPlace(target, shape, starts, src, srcShape)
 * permute / sliceCopy move elements by width, so they take Float32Array,
 * Float64Array and Int32Array; sliceAddInPlace adds in the element type
 * (int32 wraps, which is what JS's ToInt32 of the exact sum gives).
 * Semantics follow src/backend/reference/layout.ts.
 */
#include <stdio.h>
#include <string.h>

#include "addon.h"
#include "kernel_util.h"
#include "nd_iter.h"

#define TILE 32 /* transpose tile edge: 32 x 32 x 8 bytes fits in L1 */

typedef struct {
  const char *src;
  char *dst;
  size_t width;
  napi_typedarray_type type;
  int add;          /* slice add: dst += src */
  mk_nd_layout lay; /* op 0: src strides, op 1: dst strides */
  /* tiled transpose (permute whose innermost output axis is strided in x) */
  int p; /* collapsed axis whose src stride is 1 */
  int64_t tiles_p, tiles_l;
} mk_lay_ctx;

static void add_run(napi_typedarray_type t, char *dst, const char *src, int64_t n) {
  if (t == napi_float32_array) {
    float *restrict d = (float *)dst;
    const float *restrict s = (const float *)src;
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
  } else if (t == napi_float64_array) {
    double *restrict d = (double *)dst;
    const double *restrict s = (const double *)src;
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
  } else {
    uint32_t *restrict d = (uint32_t *)dst;
    const uint32_t *restrict s = (const uint32_t *)src;
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
  }
}

/* Flat chunk of the box: runs along the innermost (collapsed) axis. */
static void runs_chunk(void *p, int64_t begin, int64_t end, int64_t task) {
  const mk_lay_ctx *c = (const mk_lay_ctx *)p;
  const size_t w = c->width;
  mk_nd_iter it;
  mk_nd_iter_init(&it, &c->lay, begin);
  const int last = c->lay.rank - 1;
  const int64_t ss = c->lay.st[0][last], ds = c->lay.st[1][last];
  for (int64_t pos = begin; pos < end;) {
    int64_t n = mk_nd_iter_run(&it, &c->lay, end - pos);
    const char *s = c->src + (size_t)it.off[0] * w;
    char *d = c->dst + (size_t)it.off[1] * w;
    if (ss == 1 && ds == 1) {
      if (c->add)
        add_run(c->type, d, s, n);
      else
        memcpy(d, s, (size_t)n * w);
    } else if (w == 8) { /* strided copy (no tile plan applies) */
      for (int64_t i = 0; i < n; i++) ((uint64_t *)d)[i * ds] = ((const uint64_t *)s)[i * ss];
    } else {
      for (int64_t i = 0; i < n; i++) ((uint32_t *)d)[i * ds] = ((const uint32_t *)s)[i * ss];
    }
    pos += n;
    mk_nd_iter_advance(&it, &c->lay, n);
  }
}

/* Tiled transpose: item = (outer index over the other axes, tile_p, tile_l). */
#define TRANSPOSE_TILE(U)                                     \
  for (int64_t ip = p0; ip < p1; ip++) {                      \
    const U *restrict s = (const U *)c->src + so + ip;        \
    U *restrict d = (U *)c->dst + dof + ip * dsp;             \
    for (int64_t il = l0; il < l1; il++) d[il] = s[il * ssl]; \
  }

static void tiles_chunk(void *p, int64_t begin, int64_t end, int64_t task) {
  const mk_lay_ctx *c = (const mk_lay_ctx *)p;
  const mk_nd_layout *L = &c->lay;
  const int last = L->rank - 1, pa = c->p;
  const int64_t ssl = L->st[0][last], dsp = L->st[1][pa];
  for (int64_t item = begin; item < end; item++) {
    int64_t rest = item;
    const int64_t tl = rest % c->tiles_l;
    rest /= c->tiles_l;
    const int64_t tp = rest % c->tiles_p;
    rest /= c->tiles_p;
    int64_t so = 0, dof = 0;
    for (int ax = last - 1; ax >= 0; ax--) {
      if (ax == pa) continue;
      int64_t i = rest % L->shape[ax];
      rest /= L->shape[ax];
      so += i * L->st[0][ax];
      dof += i * L->st[1][ax];
    }
    const int64_t p0 = tp * TILE, p1 = p0 + TILE < L->shape[pa] ? p0 + TILE : L->shape[pa];
    const int64_t l0 = tl * TILE, l1 = l0 + TILE < L->shape[last] ? l0 + TILE : L->shape[last];
    if (c->width == 8) {
      TRANSPOSE_TILE(uint64_t)
    } else {
      TRANSPOSE_TILE(uint32_t)
    }
  }
}

static void contiguous_strides(const int64_t *shape, int rank, int64_t *st) {
  int64_t acc = 1;
  for (int i = rank - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= shape[i];
  }
}

static napi_value js_permute(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  mk_typed x, out;
  int64_t shape[MK_MAX_RANK], perm[MK_MAX_RANK], inst[MK_MAX_RANK];
  int rank, prank;
  if (!mk_napi_args(env, info, 4, argv, "permute") || !mk_arg_storage(env, argv[0], "permute: x", &x) ||
      !mk_arg_dims(env, argv[1], "permute: shape", 0, (int64_t)1 << 48, shape, &rank) ||
      !mk_arg_dims(env, argv[2], "permute: perm", 0, MK_MAX_RANK - 1, perm, &prank) ||
      !mk_arg_storage(env, argv[3], "permute: out", &out) || !mk_arg_same_type(env, &out, &x, "permute: out", "x"))
    return NULL;
  if (prank != rank) return mk_throw_range(env, "permute: perm has %d entries, shape has %d", prank, rank);
  int seen[MK_MAX_RANK] = {0};
  for (int i = 0; i < rank; i++) {
    if (perm[i] >= rank || seen[perm[i]])
      return mk_throw_range(env, "permute: perm is not a permutation of 0..%d", rank - 1);
    seen[perm[i]] = 1;
  }
  int64_t total = mk_prod(shape, rank);
  if (!mk_arg_len(env, &x, total, "permute: x") || !mk_arg_len(env, &out, total, "permute: out")) return NULL;
  if (total == 0) return mk_napi_undefined(env);
  mk_lay_ctx c = {.src = (const char *)x.data, .dst = (char *)out.data, .width = mk_elem_size(&x), .type = x.type};
  contiguous_strides(shape, rank, inst);
  c.lay.rank = rank;
  c.lay.nops = 2;
  for (int i = 0; i < rank; i++) {
    c.lay.shape[i] = shape[perm[i]];
    c.lay.st[0][i] = inst[perm[i]];
  }
  contiguous_strides(c.lay.shape, rank, c.lay.st[1]);
  mk_nd_collapse(&c.lay);
  const int last = c.lay.rank - 1;
  c.p = -1;
  if (c.lay.st[0][last] != 1)
    for (int ax = 0; ax < last; ax++)
      if (c.lay.st[0][ax] == 1) c.p = ax;
  if (c.p < 0) {
    mk_par_range(total, 1, runs_chunk, &c);
  } else {
    c.tiles_p = (c.lay.shape[c.p] + TILE - 1) / TILE;
    c.tiles_l = (c.lay.shape[last] + TILE - 1) / TILE;
    mk_par_range(total / (c.lay.shape[c.p] * c.lay.shape[last]) * c.tiles_p * c.tiles_l, TILE * TILE, tiles_chunk, &c);
  }
  return mk_napi_undefined(env);
}

/* Reads shape, starts and the box sizes; checks that the box fits. */
static int read_box(napi_env env, const char *fn, napi_value shape_v, napi_value starts_v, napi_value sizes_v,
                    const char *sizes_name, int64_t *shape, int64_t *starts, int64_t *sizes, int *rank) {
  char w[64];
  int r1, r2;
  snprintf(w, sizeof w, "%s: shape", fn);
  if (!mk_arg_dims(env, shape_v, w, 0, (int64_t)1 << 48, shape, rank)) return 0;
  snprintf(w, sizeof w, "%s: starts", fn);
  if (!mk_arg_dims(env, starts_v, w, 0, (int64_t)1 << 48, starts, &r1)) return 0;
  snprintf(w, sizeof w, "%s: %s", fn, sizes_name);
  if (!mk_arg_dims(env, sizes_v, w, 0, (int64_t)1 << 48, sizes, &r2)) return 0;
  if (r1 != *rank || r2 != *rank) {
    mk_throw_range(env, "%s: shape, starts and %s must have the same length (%d, %d, %d)", fn, sizes_name, *rank, r1,
                   r2);
    return 0;
  }
  for (int i = 0; i < *rank; i++)
    if (starts[i] + sizes[i] > shape[i]) {
      mk_throw_range(env, "%s: box [%lld, %lld) on axis %d exceeds its size %lld", fn, (long long)starts[i],
                     (long long)(starts[i] + sizes[i]), i, (long long)shape[i]);
      return 0;
    }
  if (mk_prod(shape, *rank) < 0) {
    mk_throw_range(env, "%s: shape is too large", fn);
    return 0;
  }
  return 1;
}

/* Box layout: op 0 walks the big array (strides of shape), op 1 the box. */
static int64_t box_layout(mk_lay_ctx *c, const int64_t *shape, const int64_t *starts, const int64_t *sizes, int rank,
                          int big_is_src) {
  int64_t st[MK_MAX_RANK], base = 0;
  contiguous_strides(shape, rank, st);
  for (int i = 0; i < rank; i++) base += starts[i] * st[i];
  c->lay.rank = rank;
  c->lay.nops = 2;
  for (int i = 0; i < rank; i++) {
    c->lay.shape[i] = sizes[i];
    c->lay.st[big_is_src ? 0 : 1][i] = st[i];
  }
  contiguous_strides(sizes, rank, c->lay.st[big_is_src ? 1 : 0]);
  mk_nd_collapse(&c->lay);
  return base;
}

static napi_value js_slice_copy(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  mk_typed x, out;
  int64_t shape[MK_MAX_RANK], starts[MK_MAX_RANK], sizes[MK_MAX_RANK];
  int rank;
  if (!mk_napi_args(env, info, 5, argv, "sliceCopy") || !mk_arg_storage(env, argv[0], "sliceCopy: x", &x) ||
      !read_box(env, "sliceCopy", argv[1], argv[2], argv[3], "sizes", shape, starts, sizes, &rank) ||
      !mk_arg_storage(env, argv[4], "sliceCopy: out", &out) ||
      !mk_arg_same_type(env, &out, &x, "sliceCopy: out", "x") ||
      !mk_arg_len(env, &x, mk_prod(shape, rank), "sliceCopy: x"))
    return NULL;
  int64_t total = mk_prod(sizes, rank);
  if (!mk_arg_len(env, &out, total, "sliceCopy: out")) return NULL;
  if (total == 0) return mk_napi_undefined(env);
  mk_lay_ctx c = {.width = mk_elem_size(&x), .type = x.type};
  int64_t base = box_layout(&c, shape, starts, sizes, rank, 1);
  c.src = (const char *)x.data + (size_t)base * c.width;
  c.dst = (char *)out.data;
  mk_par_range(total, 1, runs_chunk, &c);
  return mk_napi_undefined(env);
}

static napi_value js_slice_add(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  mk_typed target, src;
  int64_t shape[MK_MAX_RANK], starts[MK_MAX_RANK], sizes[MK_MAX_RANK];
  int rank;
  if (!mk_napi_args(env, info, 5, argv, "sliceAddInPlace") ||
      !mk_arg_storage(env, argv[0], "sliceAddInPlace: target", &target) ||
      !mk_arg_storage(env, argv[3], "sliceAddInPlace: src", &src) ||
      !mk_arg_same_type(env, &src, &target, "sliceAddInPlace: src", "target") ||
      !read_box(env, "sliceAddInPlace", argv[1], argv[2], argv[4], "srcShape", shape, starts, sizes, &rank) ||
      !mk_arg_len(env, &target, mk_prod(shape, rank), "sliceAddInPlace: target"))
    return NULL;
  int64_t total = mk_prod(sizes, rank);
  if (!mk_arg_len(env, &src, total, "sliceAddInPlace: src")) return NULL;
  if (total == 0) return mk_napi_undefined(env);
  mk_lay_ctx c = {.width = mk_elem_size(&target), .type = target.type, .add = 1};
  /* walk the box in src order: op 0 = src (the box), op 1 = target */
  int64_t base = box_layout(&c, shape, starts, sizes, rank, 0);
  c.src = (const char *)src.data;
  c.dst = (char *)target.data + (size_t)base * c.width;
  mk_par_range(total, 1, runs_chunk, &c);
  return mk_napi_undefined(env);
}

napi_status mk_register_layout(napi_env env, napi_value exports) {
  napi_status st;
  if ((st = mk_napi_export_fn(env, exports, "permute", js_permute)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "sliceCopy", js_slice_copy)) != napi_ok) return st;
  return mk_napi_export_fn(env, exports, "sliceAddInPlace", js_slice_add);
}
