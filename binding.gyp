# One addon per instruction set, all from the same sources: the loader (src/kernels/native.ts) asks
# the baseline build which ISAs this CPU has (CPUID) and loads the best one, so a package built on
# one x86-64 machine runs on any other. LONGCTX_ISA / --kernels force one. Separate shared objects,
# not one object with per-ISA files: inline and template code (ours and the C++ library's) compiled
# with AVX-512 flags could otherwise be picked by the linker for the AVX2 path.
{
  "variables": {
    "lc_common": ["-std=c++17", "-O3", "-fno-math-errno", "-ffp-contract=fast", "-fexceptions"]
  },
  "target_defaults": {
    "sources": [
      "native/addon.cpp",
      "native/pool.cpp",
      "native/gemm.cpp",
      "native/ops.cpp",
      "native/attention.cpp"
    ],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions", "-O2"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-O2"]
  },
  "targets": [
    {
      "target_name": "longctx_scalar",
      "defines": ["LC_ISA=scalar"],
      "conditions": [
        ["target_arch=='x64'", { "cflags_cc": ["<@(lc_common)", "-march=x86-64", "-mtune=generic"] },
         { "cflags_cc": ["<@(lc_common)"] }]
      ]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "longctx_avx512bf16",
          "defines": ["LC_ISA=avx512bf16"],
          "cflags_cc": ["<@(lc_common)", "-march=skylake-avx512", "-mavx512bf16", "-mtune=generic"]
        },
        {
          "target_name": "longctx_avx2",
          "defines": ["LC_ISA=avx2"],
          "cflags_cc": ["<@(lc_common)", "-march=haswell", "-mtune=generic"]
        },
        {
          "target_name": "longctx_avx512",
          "defines": ["LC_ISA=avx512"],
          "cflags_cc": ["<@(lc_common)", "-march=skylake-avx512", "-mtune=generic"]
        }
      ]
    }]
  ]
}
