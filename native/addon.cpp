// N-API bindings: argument checking and pointer extraction only; the math is in the other files.
#include <napi.h>

#include <stdexcept>
#include <string>

#include "gemm.h"
#include "ops.h"
#include "pool.h"

namespace {

float* f32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(info.Env(), std::string("native backend: ") + what + " must be a Float32Array");
  }
  return info[i].As<Napi::Float32Array>().Data();
}

float* f32_or_null(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return f32(info, i, what);
}

const int32_t* i32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(info.Env(), std::string("native backend: ") + what + " must be an Int32Array");
  }
  return info[i].As<Napi::Int32Array>().Data();
}

int64_t num(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int64Value(); }

// An optional trailing "bf16" flag: the products in bfloat16 with float32 sums (gemm.h), else float32.
lc::Precision prec(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].ToBoolean() ? lc::Precision::bf16 : lc::Precision::fp32;
}
// An optional trailing "accumulate" flag of the backward ops: += into the activation gradient
// (the default, as src/kernels/backend.ts), or false (the boolean only): overwrite it without reading it.
bool acc(const Napi::CallbackInfo& info, size_t i) {
  return !(info.Length() > i && info[i].IsBoolean() && !info[i].As<Napi::Boolean>().Value());
}
float flt(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().FloatValue(); }

Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  // (transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc[, bf16])
  lc::sgemm(info[0].ToBoolean(), info[1].ToBoolean(), num(info, 2), num(info, 3), num(info, 4), flt(info, 5),
            f32(info, 6, "A"), num(info, 7), f32(info, 8, "B"), num(info, 9), flt(info, 10), f32(info, 11, "C"),
            num(info, 12), true, prec(info, 13));
  return info.Env().Undefined();
}


// Each binding: (outputs..., inputs..., dims...) exactly as src/kernels/backend.ts orders them.
Napi::Value MatmulForward(const Napi::CallbackInfo& info) {
  lc::matmul_forward(f32(info, 0, "out"), f32(info, 1, "inp"), f32(info, 2, "w"), num(info, 3), num(info, 4), num(info, 5),
                     prec(info, 6));
  return info.Env().Undefined();
}
Napi::Value MatmulBackward(const Napi::CallbackInfo& info) {
  lc::matmul_backward(f32_or_null(info, 0, "dinp"), f32(info, 1, "dw"), f32(info, 2, "dout"), f32(info, 3, "inp"),
                      f32(info, 4, "w"), num(info, 5), num(info, 6), num(info, 7), prec(info, 8), acc(info, 9));
  return info.Env().Undefined();
}
Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  lc::rmsnorm_forward(f32(info, 0, "out"), f32(info, 1, "rstd"), f32(info, 2, "inp"), f32(info, 3, "weight"), num(info, 4),
                      num(info, 5), flt(info, 6));
  return info.Env().Undefined();
}
Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  lc::rmsnorm_backward(f32(info, 0, "dinp"), f32(info, 1, "dweight"), f32(info, 2, "dout"), f32(info, 3, "inp"),
                       f32(info, 4, "weight"), f32(info, 5, "rstd"), num(info, 6), num(info, 7), acc(info, 8));
  return info.Env().Undefined();
}
Napi::Value RopeForward(const Napi::CallbackInfo& info) {
  lc::rope_forward(f32(info, 0, "x"), f32(info, 1, "cos"), f32(info, 2, "sin"), num(info, 3), num(info, 4), num(info, 5), num(info, 6));
  return info.Env().Undefined();
}
Napi::Value RopeBackward(const Napi::CallbackInfo& info) {
  lc::rope_backward(f32(info, 0, "dx"), f32(info, 1, "cos"), f32(info, 2, "sin"), num(info, 3), num(info, 4), num(info, 5), num(info, 6));
  return info.Env().Undefined();
}
Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  lc::attention_forward(f32(info, 0, "out"), f32(info, 1, "lse"), f32(info, 2, "q"), f32(info, 3, "k"), f32(info, 4, "v"),
                        num(info, 5), num(info, 6), num(info, 7), num(info, 8), num(info, 9), num(info, 10), prec(info, 11));
  return info.Env().Undefined();
}
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  lc::attention_backward(f32(info, 0, "dq"), f32(info, 1, "dk"), f32(info, 2, "dv"), f32(info, 3, "dout"), f32(info, 4, "out"),
                         f32(info, 5, "lse"), f32(info, 6, "q"), f32(info, 7, "k"), f32(info, 8, "v"), num(info, 9),
                         num(info, 10), num(info, 11), num(info, 12), num(info, 13), prec(info, 14), acc(info, 15));
  return info.Env().Undefined();
}
Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  lc::swiglu_forward(f32(info, 0, "out"), f32(info, 1, "gate"), f32(info, 2, "up"), num(info, 3));
  return info.Env().Undefined();
}
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  lc::swiglu_backward(f32(info, 0, "dgate"), f32(info, 1, "dup"), f32(info, 2, "dout"), f32(info, 3, "gate"), f32(info, 4, "up"), num(info, 5),
                      acc(info, 6));
  return info.Env().Undefined();
}
Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  lc::embedding_forward(f32(info, 0, "out"), i32(info, 1, "tokens"), f32(info, 2, "table"), num(info, 3), num(info, 4));
  return info.Env().Undefined();
}
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  lc::embedding_backward(f32(info, 0, "dtable"), f32(info, 1, "dout"), i32(info, 2, "tokens"), num(info, 3), num(info, 4));
  return info.Env().Undefined();
}
Napi::Value Add(const Napi::CallbackInfo& info) {
  lc::add(f32(info, 0, "out"), f32(info, 1, "a"), f32(info, 2, "b"), num(info, 3));
  return info.Env().Undefined();
}
Napi::Value Accumulate(const Napi::CallbackInfo& info) {
  lc::accumulate(f32(info, 0, "acc"), f32(info, 1, "a"), num(info, 2));
  return info.Env().Undefined();
}
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  // (losses, dx|null, dw|null, x, w, targets, dloss, N, C, V[, bf16[, accumulate]])
  try {
    lc::cross_entropy(f32(info, 0, "losses"), f32_or_null(info, 1, "dx"), f32_or_null(info, 2, "dw"), f32(info, 3, "x"),
                      f32(info, 4, "w"), i32(info, 5, "targets"), flt(info, 6), num(info, 7), num(info, 8), num(info, 9),
                      prec(info, 10), acc(info, 11));
  } catch (const std::range_error& e) {
    throw Napi::RangeError::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}
Napi::Value Adamw(const Napi::CallbackInfo& info) {
  // (params, grads, m, v, n, lr, beta1, beta2, eps, weightDecay, step)
  lc::AdamWStep s{flt(info, 5), flt(info, 6), flt(info, 7), flt(info, 8), flt(info, 9), num(info, 10)};
  lc::adamw(f32(info, 0, "params"), f32(info, 1, "grads"), f32(info, 2, "m"), f32(info, 3, "v"), num(info, 4), s);
  return info.Env().Undefined();
}
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), lc::sum_squares(f32(info, 0, "a"), num(info, 1)));
}
Napi::Value Scale(const Napi::CallbackInfo& info) {
  lc::scale(f32(info, 0, "a"), flt(info, 1), num(info, 2));
  return info.Env().Undefined();
}

#define LC_STR2(x) #x
#define LC_STR(x) LC_STR2(x)

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  // The bindings' calling convention, raised whenever an argument changes meaning (2: the backward
  // ops' trailing accumulate flag), so that src/kernels/native.ts refuses a stale build: an old one
  // would ignore the flag and add into gradient buffers the model no longer zeroes.
  o.Set("abi", 2);
  o.Set("threads", lc::pool().size());
  o.Set("gemmKernel", lc::sgemm_kernel_name());
  o.Set("bf16Native", lc::bf16_native());  // bf16 products on vdpbf16ps (else rounded operands, float32 FMAs)
#ifdef LC_ISA
  o.Set("isa", LC_STR(LC_ISA));  // the instruction set this build was compiled for
#endif
  return o;
}

// What this CPU can run (CPUID), asked of the baseline build before loading a faster one. The AVX-512
// build needs F, BW, DQ and VL (Skylake-X's set); BF16 is reported for the kernels that will use it.
Napi::Value Cpu(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  o.Set("avx2", __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") != 0);
  o.Set("avx512", __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vl") != 0);
  o.Set("avx512bf16", o.Get("avx512").ToBoolean() && __builtin_cpu_supports("avx512bf16"));
#else
  o.Set("avx2", false);
  o.Set("avx512", false);
  o.Set("avx512bf16", false);
#endif
  return o;
}

// The address of a typed array's first element modulo m: lets the caller place buffers on cache
// lines (src/kernels/native.ts, cacheLineFloat32).
Napi::Value AddressMod(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "native backend: addressMod needs a typed array");
  const Napi::TypedArray a = info[0].As<Napi::TypedArray>();
  const auto base = reinterpret_cast<uintptr_t>(a.ArrayBuffer().Data()) + a.ByteOffset();
  const int64_t m = num(info, 1);
  return Napi::Number::New(info.Env(), static_cast<double>(m > 0 ? base % static_cast<uint64_t>(m) : 0));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("addressMod", Napi::Function::New(env, AddressMod));
  exports.Set("sgemm", Napi::Function::New(env, Sgemm));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("cpu", Napi::Function::New(env, Cpu));
  exports.Set("matmulForward", Napi::Function::New(env, MatmulForward));
  exports.Set("matmulBackward", Napi::Function::New(env, MatmulBackward));
  exports.Set("rmsnormForward", Napi::Function::New(env, RmsnormForward));
  exports.Set("rmsnormBackward", Napi::Function::New(env, RmsnormBackward));
  exports.Set("ropeForward", Napi::Function::New(env, RopeForward));
  exports.Set("ropeBackward", Napi::Function::New(env, RopeBackward));
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
  exports.Set("swigluForward", Napi::Function::New(env, SwigluForward));
  exports.Set("swigluBackward", Napi::Function::New(env, SwigluBackward));
  exports.Set("embeddingForward", Napi::Function::New(env, EmbeddingForward));
  exports.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward));
  exports.Set("add", Napi::Function::New(env, Add));
  exports.Set("accumulate", Napi::Function::New(env, Accumulate));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy));
  exports.Set("adamw", Napi::Function::New(env, Adamw));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares));
  exports.Set("scale", Napi::Function::New(env, Scale));
  return exports;
}

}  // namespace

NODE_API_MODULE(NODE_GYP_MODULE_NAME, Init)
