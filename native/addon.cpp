// N-API bindings: argument checking and pointer extraction only; the math is in the other files.
#include <napi.h>

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
float flt(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().FloatValue(); }

Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  // (transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
  lc::sgemm(info[0].ToBoolean(), info[1].ToBoolean(), num(info, 2), num(info, 3), num(info, 4), flt(info, 5),
            f32(info, 6, "A"), num(info, 7), f32(info, 8, "B"), num(info, 9), flt(info, 10), f32(info, 11, "C"),
            num(info, 12));
  return info.Env().Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("threads", lc::pool().size());
  o.Set("gemmKernel", lc::sgemm_kernel_name());
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sgemm", Napi::Function::New(env, Sgemm));
  exports.Set("info", Napi::Function::New(env, Info));
  return exports;
}

}  // namespace

NODE_API_MODULE(longctx, Init)
