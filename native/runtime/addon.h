/*
 * The moekit_native Node-API module is assembled from several C files. Each
 * file that exports functions provides one registration function
 *
 *   napi_status mk_register_<name>(napi_env env, napi_value exports);
 *
 * declared here, which adds its functions to `exports` (use
 * mk_napi_export_fn from napi_util.h) and returns napi_ok. addon.c calls
 * every function listed in its k_modules table at load time.
 *
 * To add a kernels file native/foo.c:
 *   1. write mk_register_foo in it and declare it below;
 *   2. add `{"foo", mk_register_foo},` to k_modules in addon.c;
 *   3. add the new functions to the NativeAddon interface in
 *      src/backend/native/addon.ts.
 * binding.gyp compiles every .c file in native/, so no build change is needed.
 */
#ifndef MOEKIT_ADDON_H
#define MOEKIT_ADDON_H

#include "napi_util.h"

napi_status mk_register_core(napi_env env, napi_value exports);        /* addon.c */
napi_status mk_register_gemm(napi_env env, napi_value exports);        /* gemm_napi.c */
napi_status mk_register_elementwise(napi_env env, napi_value exports); /* elementwise.c */
napi_status mk_register_reduce(napi_env env, napi_value exports);      /* reduce.c */
napi_status mk_register_rowwise(napi_env env, napi_value exports);     /* rowwise.c */
napi_status mk_register_layout(napi_env env, napi_value exports);      /* layout.c */
napi_status mk_register_indexing(napi_env env, napi_value exports);    /* indexing.c */
napi_status mk_register_sort(napi_env env, napi_value exports);        /* sort.c */
napi_status mk_register_attention(napi_env env, napi_value exports);   /* attention.c */
napi_status mk_register_optim(napi_env env, napi_value exports);       /* optim.c */
napi_status mk_register_dropout(napi_env env, napi_value exports);     /* dropout.c */
napi_status mk_register_moe(napi_env env, napi_value exports);         /* moe_napi.c */
napi_status mk_register_router(napi_env env, napi_value exports);      /* router.c */
napi_status mk_register_moe_plan(napi_env env, napi_value exports);    /* moe_plan.c */
napi_status mk_register_dist(napi_env env, napi_value exports); /* dist/mpi.c (MPI collectives, loaded at first use) */
/* the half-precision kernels: ops/half_convert.c (bf16 / f16 <-> f32), which also registers gemm/gemm_bf16.c */
napi_status mk_register_half(napi_env env, napi_value exports);
napi_status mk_register_fma_peak(napi_env env, napi_value exports); /* fma_peak.c */
napi_status mk_register_gemm_bf16(napi_env env, napi_value exports);

#endif
