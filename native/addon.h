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

napi_status mk_register_core(napi_env env, napi_value exports); /* addon.c */
napi_status mk_register_gemm(napi_env env, napi_value exports); /* gemm_napi.c */

#endif
