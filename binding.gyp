{
  "targets": [
    {
      "target_name": "moekit_native",
      "sources": [
        "<!@(node -p \"['runtime','gemm','moe','ops','dist'].flatMap(d=>require('fs').readdirSync('native/'+d).filter(f=>f.endsWith('.c')).sort().map(f=>'native/'+d+'/'+f)).join(' ')\")"
      ],
      "include_dirs": ["native/runtime", "native/gemm", "native/moe", "native/ops", "native/dist"],
      "defines": ["NAPI_VERSION=8"],
      "cflags!": ["-O2", "-O3", "-Os", "-ffast-math"],
      "cflags_c": ["-std=c11", "-O3", "-fno-math-errno", "-ffp-contract=off", "-fPIC", "-pthread", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-pthread"],
      "libraries": ["-lm", "-ldl"],
      "xcode_settings": {
        "GCC_C_LANGUAGE_STANDARD": "c11",
        "GCC_OPTIMIZATION_LEVEL": "3",
        "OTHER_CFLAGS": ["-fno-math-errno", "-ffp-contract=off"]
      }
    }
  ]
}
