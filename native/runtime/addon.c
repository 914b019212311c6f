/*
 * Module entry point: runs every registration function (see addon.h) and
 * provides the core exports: setNumThreads, getNumThreads, cpuInfo, setIsa.
 */
#include "addon.h"

#include "cpu.h"
#include "malloc_policy.h"
#include "threadpool.h"

typedef napi_status (*mk_register_fn)(napi_env env, napi_value exports);

/* One line per exports file. Keep "core" first. */
static const struct {
  const char *name;
  mk_register_fn fn;
} k_modules[] = {
    {"core", mk_register_core},         {"gemm", mk_register_gemm},       {"elementwise", mk_register_elementwise},
    {"reduce", mk_register_reduce},     {"rowwise", mk_register_rowwise}, {"layout", mk_register_layout},
    {"indexing", mk_register_indexing}, {"sort", mk_register_sort},       {"attention", mk_register_attention},
    {"optim", mk_register_optim},       {"moe", mk_register_moe},         {"router", mk_register_router},
    {"moe_plan", mk_register_moe_plan}, {"dist", mk_register_dist},       {"half", mk_register_half},
    {"fma_peak", mk_register_fma_peak}, {"dropout", mk_register_dropout},
};

/* setNumThreads(n: number): void  (n <= 0 restores the default) */
static napi_value set_num_threads(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t n;
  if (!mk_napi_args(env, info, 1, argv, "setNumThreads") ||
      !mk_napi_i64(env, argv[0], "setNumThreads: n", -1, 1024, &n))
    return NULL;
  mk_set_num_threads((int)n);
  return mk_napi_undefined(env);
}

/* getNumThreads(): number */
static napi_value get_num_threads(napi_env env, napi_callback_info info) {
  (void)info;
  return mk_napi_make_i64(env, mk_get_num_threads());
}

/* cpuInfo(): { isa, threads, l2KiB?, caches: { l1dKiB, l2KiB, l3KiB, source } } */
static napi_value cpu_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok) return NULL;
  napi_set_named_property(env, obj, "isa", mk_napi_make_string(env, mk_isa_name(mk_cpu_isa())));
  napi_set_named_property(env, obj, "threads", mk_napi_make_i64(env, mk_get_num_threads()));
  int l2 = mk_cpu_l2_kib();
  if (l2 > 0) napi_set_named_property(env, obj, "l2KiB", mk_napi_make_i64(env, l2));
  const mk_cpu_cache_sizes *c = mk_cpu_caches();
  napi_value caches;
  if (napi_create_object(env, &caches) != napi_ok) return NULL;
  napi_set_named_property(env, caches, "l1dKiB", mk_napi_make_i64(env, c->l1d_kib));
  napi_set_named_property(env, caches, "l2KiB", mk_napi_make_i64(env, c->l2_kib));
  napi_set_named_property(env, caches, "l3KiB", mk_napi_make_i64(env, c->l3_kib));
  napi_set_named_property(env, caches, "source", mk_napi_make_string(env, c->source));
  napi_set_named_property(env, obj, "caches", caches);
  return obj;
}

/* setIsa(name: "avx512" | "avx2" | "scalar"): string — lower the ISA the
 * kernels use (for tests and comparisons); clamped to what the CPU has;
 * returns the ISA now in use. */
static napi_value set_isa(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!mk_napi_args(env, info, 1, argv, "setIsa")) return NULL;
  char name[16] = {0};
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok)
    return mk_throw_type(env, "setIsa: isa must be a string");
  int isa = mk_isa_parse(name);
  if (isa < 0)
    return mk_throw_range(env, "setIsa: isa must be \"avx512\", \"avx2\", \"neon\" or \"scalar\", got \"%s\"", name);
  return mk_napi_make_string(env, mk_isa_name(mk_cpu_set_isa((mk_isa)isa)));
}

napi_status mk_register_core(napi_env env, napi_value exports) {
  napi_status st;
  if ((st = mk_napi_export_fn(env, exports, "setNumThreads", set_num_threads)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "getNumThreads", get_num_threads)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "cpuInfo", cpu_info)) != napi_ok) return st;
  return mk_napi_export_fn(env, exports, "setIsa", set_isa);
}

NAPI_MODULE_INIT() {
  static int retained = 0;
  if (!retained) {
    retained = 1;
    mk_retain_memory();
  }
  for (size_t i = 0; i < sizeof k_modules / sizeof k_modules[0]; i++) {
    if (k_modules[i].fn(env, exports) != napi_ok) {
      mk_throw_error(env, "moekit_native: registering \"%s\" exports failed", k_modules[i].name);
      return NULL;
    }
  }
  return exports;
}
