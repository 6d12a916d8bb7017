// Native ops other than attention. Same math as src/kernels/ref (the oracle the parity tests
// compare against); float32 storage, row reductions in float with 16 partial sums, threaded over rows.
#include "ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "gemm.h"
#include "pool.h"
#include "simd.h"

namespace lc {

namespace {
// Elementwise work below this size is not worth waking the other threads for.
constexpr int64_t kMinParallel = 1 << 14;

void for_rows(int64_t N, int64_t work_per_row, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (N * work_per_row < kMinParallel) fn(0, N, 0);
  else parallel_for(N, 1, fn);
}

void for_elems(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n < kMinParallel) fn(0, n, 0);
  else parallel_for(n, 64, fn);
}

// Per-thread partial sums of a (C) gradient, reduced into dst at the end: threads never write
// the same weight gradient concurrently.
struct PartialRows {
  std::vector<float> buf;  // (threads, C)
  int64_t C;
  explicit PartialRows(int64_t C_) : buf(static_cast<size_t>(pool().size() * C_), 0.f), C(C_) {}
  float* row(int tid) { return buf.data() + tid * C; }
  void reduce_into(float* dst) {
    for (int t = 0; t < pool().size(); t++)
      for (int64_t c = 0; c < C; c++) dst[c] += buf[t * C + c];
  }
};
}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C, float eps) {
  for_rows(N, C, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; n++) {
      const float* x = inp + n * C;
      float r = 1.0f / std::sqrt(dot(x, x, C) / static_cast<float>(C) + eps);
      rstd[n] = r;
      float* o = out + n * C;
      for (int64_t c = 0; c < C; c++) o[c] = x[c] * r * weight[c];
    }
  });
}

// One thread's rows [n0, n1) of the RMSNorm backward, dwt its partial weight gradient. Two passes
// over a row: sum_c g_c x_c (g = dout * weight, in dot()'s 16 partial sums), then dx and dwt
// together. (Storing g first and making dx and dwt separate passes ran at a third of the forward's
// bandwidth.)
template <bool kAccumulate>
void rmsnorm_backward_rows(float* __restrict dinp, float* __restrict dwt, const float* __restrict dout,
                           const float* __restrict inp, const float* __restrict weight, const float* __restrict rstd,
                           int64_t n0, int64_t n1, int64_t C) {
  // k_n = r^2 * sum_c g_c x_c / C per row
  auto row_k = [&](int64_t n) {
    const float* x = inp + n * C;
    const float* d = dout + n * C;
    float acc[16] = {0};
    int64_t c = 0;
    for (; c + 16 <= C; c += 16)
      for (int j = 0; j < 16; j++) acc[j] += d[c + j] * weight[c + j] * x[c + j];
    float gx = 0.f;
    for (int j = 0; j < 16; j++) gx += acc[j];
    for (; c < C; c++) gx += d[c] * weight[c] * x[c];
    return rstd[n] * rstd[n] * gx / static_cast<float>(C);
  };
  auto dx_of = [&](int64_t n, int64_t c, float k) { return rstd[n] * (dout[n * C + c] * weight[c] - inp[n * C + c] * k); };
  int64_t n = n0;
  // two rows at a time: one read-modify-write of dwt per pair of rows
  for (; n + 2 <= n1; n += 2) {
    const float k0 = row_k(n), k1 = row_k(n + 1), r0 = rstd[n], r1 = rstd[n + 1];
    const float *d0 = dout + n * C, *d1 = d0 + C, *x0 = inp + n * C, *x1 = x0 + C;
    float *dx0 = dinp + n * C, *dx1 = dx0 + C;
    for (int64_t c = 0; c < C; c++) {
      const float v0 = dx_of(n, c, k0), v1 = dx_of(n + 1, c, k1);
      dx0[c] = kAccumulate ? dx0[c] + v0 : v0;  // not accumulating: dx is never read
      dx1[c] = kAccumulate ? dx1[c] + v1 : v1;
      dwt[c] += d0[c] * x0[c] * r0 + d1[c] * x1[c] * r1;
    }
  }
  for (; n < n1; n++) {
    const float k = row_k(n), r = rstd[n];
    const float *d = dout + n * C, *x = inp + n * C;
    float* dx = dinp + n * C;
    for (int64_t c = 0; c < C; c++) {
      const float v = dx_of(n, c, k);
      dx[c] = kAccumulate ? dx[c] + v : v;
      dwt[c] += d[c] * x[c] * r;
    }
  }
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C, bool accumulate) {
  PartialRows dw(C);
  for_rows(N, C, [&](int64_t n0, int64_t n1, int tid) {
    if (accumulate) {
      rmsnorm_backward_rows<true>(dinp, dw.row(tid), dout, inp, weight, rstd, n0, n1, C);
    } else {
      rmsnorm_backward_rows<false>(dinp, dw.row(tid), dout, inp, weight, rstd, n0, n1, C);
    }
  });
  dw.reduce_into(dweight);
}

// Rotate-half layout: pair (i, i + HS/2) of each head vector rotates by the table entry of its row.
template <bool kTranspose>
static void rope_apply(float* x, const float* cos, const float* sin, int64_t B, int64_t T, int64_t NX, int64_t HS) {
  const int64_t half = HS / 2;
  for_rows(B * T, NX * HS, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t t = r % T;
      const float* c = cos + t * half;
      const float* s = sin + t * half;
      for (int64_t h = 0; h < NX; h++) {
        float* v = x + (r * NX + h) * HS;
        for (int64_t i = 0; i < half; i++) {
          float x1 = v[i], x2 = v[i + half];
          if (kTranspose) {
            v[i] = x1 * c[i] + x2 * s[i];
            v[i + half] = x2 * c[i] - x1 * s[i];
          } else {
            v[i] = x1 * c[i] - x2 * s[i];
            v[i + half] = x2 * c[i] + x1 * s[i];
          }
        }
      }
    }
  });
}

void rope_forward(float* x, const float* cos, const float* sin, int64_t B, int64_t T, int64_t NX, int64_t HS) {
  rope_apply<false>(x, cos, sin, B, T, NX, HS);
}
void rope_backward(float* dx, const float* cos, const float* sin, int64_t B, int64_t T, int64_t NX, int64_t HS) {
  rope_apply<true>(dx, cos, sin, B, T, NX, HS);
}

// SwiGLU in one pass over its operands, a vector at a time (exp(-g) from simd.h's exp16 / exp8,
// std::exp for the last n % width elements). (The same arithmetic as staging exp(-g) through a
// chunk buffer in three passes, which cost 10-20% more.)
template <class Fn>
inline void swiglu_elems(int64_t n, Fn&& body) {
  for_elems(n, [&](int64_t i0, int64_t i1, int) {
    int64_t i = i0;
#if defined(__AVX512F__)
    for (; i + 16 <= i1; i += 16) body.vec16(i);
#elif defined(__AVX2__) && defined(__FMA__)
    for (; i + 8 <= i1; i += 8) body.vec8(i);
#endif
    for (; i < i1; i++) body.one(i);
  });
}

void swiglu_forward(float* out, const float* gate, const float* up, int64_t N) {
  struct {
    float* out;
    const float *gate, *up;
#if defined(__AVX512F__)
    void vec16(int64_t i) const {
      const __m512 g = _mm512_loadu_ps(gate + i), e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
      _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), _mm512_loadu_ps(up + i)));
    }
#elif defined(__AVX2__) && defined(__FMA__)
    void vec8(int64_t i) const {
      const __m256 g = _mm256_loadu_ps(gate + i), e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
      _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), _mm256_loadu_ps(up + i)));
    }
#endif
    void one(int64_t i) const { out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i]; }
  } body{out, gate, up};
  swiglu_elems(N, body);
}

// d silu(g) / dg = s (1 + g (1 - s)), s = sigmoid(g) = 1 / (1 + exp(-g))
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t N,
                     bool accumulate) {
  struct {
    float *dgate, *dup;
    const float *dout, *gate, *up;
    bool accumulate;  // false: dgate and dup are never read
#if defined(__AVX512F__)
    void vec16(int64_t i) const {
      const __m512 one = _mm512_set1_ps(1.0f);
      const __m512 g = _mm512_loadu_ps(gate + i), d = _mm512_loadu_ps(dout + i);
      const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
      __m512 dg = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d, _mm512_loadu_ps(up + i)), s),
                                _mm512_add_ps(one, _mm512_mul_ps(g, _mm512_sub_ps(one, s))));
      __m512 du = _mm512_mul_ps(_mm512_mul_ps(d, g), s);
      if (accumulate) {
        dg = _mm512_add_ps(_mm512_loadu_ps(dgate + i), dg);
        du = _mm512_add_ps(_mm512_loadu_ps(dup + i), du);
      }
      _mm512_storeu_ps(dgate + i, dg);
      _mm512_storeu_ps(dup + i, du);
    }
#elif defined(__AVX2__) && defined(__FMA__)
    void vec8(int64_t i) const {
      const __m256 one = _mm256_set1_ps(1.0f);
      const __m256 g = _mm256_loadu_ps(gate + i), d = _mm256_loadu_ps(dout + i);
      const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
      __m256 dg = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(up + i)), s),
                                _mm256_add_ps(one, _mm256_mul_ps(g, _mm256_sub_ps(one, s))));
      __m256 du = _mm256_mul_ps(_mm256_mul_ps(d, g), s);
      if (accumulate) {
        dg = _mm256_add_ps(_mm256_loadu_ps(dgate + i), dg);
        du = _mm256_add_ps(_mm256_loadu_ps(dup + i), du);
      }
      _mm256_storeu_ps(dgate + i, dg);
      _mm256_storeu_ps(dup + i, du);
    }
#endif
    void one(int64_t i) const {
      const float g = gate[i], s = 1.0f / (1.0f + std::exp(-g)), d = dout[i];
      const float dg = d * up[i] * s * (1.0f + g * (1.0f - s)), du = d * g * s;
      dgate[i] = accumulate ? dgate[i] + dg : dg;
      dup[i] = accumulate ? dup[i] + du : du;
    }
  } body{dgate, dup, dout, gate, up, accumulate};
  swiglu_elems(N, body);
}

void embedding_forward(float* out, const int32_t* tokens, const float* table, int64_t N, int64_t C) {
  for_rows(N, C, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; n++) std::memcpy(out + n * C, table + static_cast<int64_t>(tokens[n]) * C, C * sizeof(float));
  });
}

void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int64_t C) {
  // Threads split the columns, so repeated tokens never race on a row.
  for_elems(C, [&](int64_t c0, int64_t c1, int) {
    for (int64_t n = 0; n < N; n++) {
      float* d = dtable + static_cast<int64_t>(tokens[n]) * C;
      const float* g = dout + n * C;
      for (int64_t c = c0; c < c1; c++) d[c] += g[c];
    }
  });
}

void add(float* out, const float* a, const float* b, int64_t n) {
  for_elems(n, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; i++) out[i] = a[i] + b[i];
  });
}

void accumulate(float* acc, const float* a, int64_t n) {
  for_elems(n, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; i++) acc[i] += a[i];
  });
}

double sum_squares(const float* a, int64_t n) {
  std::vector<double> part(pool().size(), 0.0);
  for_elems(n, [&](int64_t i0, int64_t i1, int tid) {
    // float partial sums over short blocks, float64 across blocks: exact enough for a norm of 1e9 values
    double s = 0.0;
    for (int64_t b = i0; b < i1; b += 4096) {
      int64_t e = std::min(i1, b + 4096);
      s += dot(a + b, a + b, e - b);
    }
    part[tid] = s;
  });
  double s = 0.0;
  for (double p : part) s += p;
  return s;
}

void scale(float* a, float s, int64_t n) {
  for_elems(n, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; i++) a[i] *= s;
  });
}

namespace {
// Elements [i0, i1) of one AdamW update. Constants by value and restrict-qualified arrays: with the
// step's fields read through a reference inside the loop, GCC could not rule out that the stores
// to m / v / params changed them and left the loop scalar (sqrtss and divss per element).
void adamw_range(float* __restrict params, const float* __restrict grads, float* __restrict m, float* __restrict v,
                 int64_t i0, int64_t i1, float beta1, float beta2, float eps, float step_size, float inv_sqrt_bc2,
                 float decay) {
  const float one_minus_b1 = 1.0f - beta1, one_minus_b2 = 1.0f - beta2;
  for (int64_t i = i0; i < i1; i++) {
    const float g = grads[i];
    const float mi = beta1 * m[i] + one_minus_b1 * g;
    const float vi = beta2 * v[i] + one_minus_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i] * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}
}  // namespace

void adamw(float* params, const float* grads, float* m, float* v, int64_t n, const AdamWStep& s) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(s.beta1), static_cast<double>(s.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(s.beta2), static_cast<double>(s.step));
  const float step_size = static_cast<float>(s.lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float decay = 1.0f - s.lr * s.weight_decay;
  const float beta1 = s.beta1, beta2 = s.beta2, eps = s.eps;
  for_elems(n, [=](int64_t i0, int64_t i1, int) {
    adamw_range(params, grads, m, v, i0, i1, beta1, beta2, eps, step_size, inv_sqrt_bc2, decay);
  });
}

void matmul_forward(float* out, const float* inp, const float* w, int64_t N, int64_t C, int64_t OC, Precision prec) {
  sgemm(false, true, N, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC, true, prec);
}

void matmul_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, int64_t N, int64_t C,
                     int64_t OC, Precision prec, bool accumulate) {
  // dinp (N,C) (+)= dout @ w: beta 0 overwrites without reading dinp
  if (dinp) sgemm(false, false, N, C, OC, 1.0f, dout, OC, w, C, accumulate ? 1.0f : 0.0f, dinp, C, true, prec);
  sgemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C, true, prec);             // dw (OC,C) += dout^T @ inp
}

void cross_entropy(float* losses, float* dx, float* dw, const float* x, const float* w, const int32_t* targets,
                   float dloss, int64_t N, int64_t C, int64_t V, Precision prec, bool accumulate) {
  for (int64_t n = 0; n < N; n++) {
    int32_t t = targets[n];
    if (t != -100 && (t < 0 || t >= V)) {
      throw std::range_error("target " + std::to_string(t) + " at row " + std::to_string(n) + " is outside the vocabulary [0, " +
                             std::to_string(V) + ") and is not the ignore index -100");
    }
  }
  // Rows per chunk: big enough for efficient GEMMs, small enough that (R, V) logits stay ~16 MiB.
  const int64_t R = std::max<int64_t>(1, std::min<int64_t>(N, (int64_t(1) << 22) / V));
  // Logit rows LD floats apart, one cache line more than V: the weight gradient's product reads
  // the logits down their columns (dW += dlogits^T x), and at a power-of-two V the rows of such a
  // column all fall into the same few cache sets and evict each other before the next strip of
  // columns reuses their lines. Zen 5, whole call, alternated: V 4096 (C 256) fp32 -3%, bf16 -10%;
  // V 8192 (C 512) -4.5%, -8.5%. (The product alone at 4096 x 256 x 1024, bf16: 389 -> 475 GFLOPS.)
  const int64_t LD = V + 16;
  thread_local std::vector<float> logits_buf;
  float* logits = scratch(logits_buf, static_cast<size_t>(R * LD));  // (R, LD)
  const bool backward = dx != nullptr;
  for (int64_t r0 = 0; r0 < N; r0 += R) {
    const int64_t rows = std::min(R, N - r0);
    sgemm(false, true, rows, V, C, 1.0f, x + r0 * C, C, w, C, 0.0f, logits, LD, true, prec);
    for_rows(rows, V, [&](int64_t a, int64_t b, int) {
      for (int64_t i = a; i < b; i++) {
        float* z = logits + i * LD;
        int32_t t = targets[r0 + i];
        if (t == -100) {
          losses[r0 + i] = 0.f;
          if (backward) std::memset(z, 0, V * sizeof(float));
          continue;
        }
        float zt = z[t];
        float mx = max_of(z, V);
        double sum = exp_shift_sum(z, z, mx, V);  // z <- exp(z - max)
        double lse = mx + std::log(sum);
        losses[r0 + i] = static_cast<float>(lse - zt);
        if (backward) {  // z <- dloss * (softmax - onehot)
          float k = static_cast<float>(dloss / sum);
          for (int64_t o = 0; o < V; o++) z[o] *= k;
          z[t] -= dloss;
        }
      }
    });
    if (backward) {
      sgemm(false, false, rows, C, V, 1.0f, logits, LD, w, C, accumulate ? 1.0f : 0.0f, dx + r0 * C, C, true, prec);  // dx (+)= dlogits @ w
      sgemm(true, false, V, C, rows, 1.0f, logits, LD, x + r0 * C, C, 1.0f, dw, C, true, prec);   // dw += dlogits^T @ x
    }
  }
}

}  // namespace lc
