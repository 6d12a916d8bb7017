{
  "targets": [
    {
      "target_name": "longctx",
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
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-O2"],
      "cflags_cc": ["-std=c++17", "-O3", "-march=native", "-fno-math-errno", "-ffp-contract=fast", "-fexceptions"]
    }
  ]
}
