/* The f32 vector kernels of the ISA in use (vec_f32.h). */
#include "vec_f32.h"

#include <stddef.h>

#include "cpu.h"

const mk_vec_f32_kernels *mk_vec_f32(void) {
  switch (mk_cpu_isa()) {
#if defined(__x86_64__)
    case MK_ISA_AVX512:
      return &mk_vec_f32_avx512;
    case MK_ISA_AVX2:
      return &mk_vec_f32_avx2;
#endif
#if defined(__aarch64__)
    case MK_ISA_NEON:
      return &mk_vec_f32_neon;
#endif
    default:
      return NULL;
  }
}
