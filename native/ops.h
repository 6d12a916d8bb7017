// Native ops: the same contract as src/kernels/backend.ts (outputs first, backward accumulates into
// weight gradients always and into activation gradients unless `accumulate` is false, which
// overwrites them without reading them), float32 buffers, multi-threaded over the process pool.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gemm.h"

namespace lc {

// A per-thread buffer of at least n elements, kept between calls: an op called every layer of
// every step with the same shapes (attention's packed keys, the LM head's logits) would otherwise
// map and fault in fresh multi-MiB pages each call, and unmapping them interrupts the other core
// (TLB shootdown). Each call site owns its own thread_local vector; contents are not cleared.
template <typename T>
T* scratch(std::vector<T>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

struct AdamWStep { float lr, beta1, beta2, eps, weight_decay; int64_t step; };

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C, float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C, bool accumulate);
void rope_forward(float* x, const float* cos, const float* sin, int64_t B, int64_t T, int64_t NX, int64_t HS);
void rope_backward(float* dx, const float* cos, const float* sin, int64_t B, int64_t T, int64_t NX, int64_t HS);
void swiglu_forward(float* out, const float* gate, const float* up, int64_t N);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t N,
                     bool accumulate);
void embedding_forward(float* out, const int32_t* tokens, const float* table, int64_t N, int64_t C);
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int64_t C);
void add(float* out, const float* a, const float* b, int64_t n);
void accumulate(float* acc, const float* a, int64_t n);
double sum_squares(const float* a, int64_t n);
void scale(float* a, float s, int64_t n);
void adamw(float* params, const float* grads, float* m, float* v, int64_t n, const AdamWStep& s);
// The matmuls (and the LM head inside cross_entropy) compute in `prec` (gemm.h); every buffer stays float32.
void matmul_forward(float* out, const float* inp, const float* w, int64_t N, int64_t C, int64_t OC, Precision prec);
void matmul_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, int64_t N, int64_t C,
                     int64_t OC, Precision prec, bool accumulate);
void cross_entropy(float* losses, float* dx, float* dw, const float* x, const float* w, const int32_t* targets,
                   float dloss, int64_t N, int64_t C, int64_t V, Precision prec,
                   bool accumulate);  // dx/dw null: forward only; accumulate: into dx (dw always accumulates)

// bf16: the score and output products in bfloat16 on the avx512bf16 build (HS a multiple of 16,
// at least 16 query rows); float32 elsewhere.
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int64_t B, int64_t Tq, int64_t Tk, int64_t NH, int64_t NKV, int64_t HS, Precision prec);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                        const float* q, const float* k, const float* v, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS,
                        Precision prec, bool accumulate);

}  // namespace lc
