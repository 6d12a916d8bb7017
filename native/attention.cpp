// Causal grouped-query attention in the flash style (Dao et al., FlashAttention-2), on CPU:
// queries and keys in tiles, an online softmax, and only the output and each query's log-sum-exp
// saved for backward. Memory is O(T); no T x T matrix exists. The tile products are small GEMMs
// run single-threaded inside pool tasks (lc::sgemm with threaded = false).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "gemm.h"
#include "ops.h"
#include "pool.h"
#include "simd.h"

namespace lc {

namespace {
constexpr int64_t Br = 64;  // query rows per tile
constexpr int64_t Bc = 64;  // keys per tile

// Runs task(i, tid) for i in [0, n) with dynamic scheduling: tiles of causal attention cost
// different amounts, so threads pull the next task instead of taking a fixed share.
template <typename F>
void run_tasks(int64_t n, F&& task) {
  std::atomic<int64_t> next{0};
  if (n <= 1 || pool().size() == 1) {
    for (int64_t i = 0; i < n; i++) task(i, 0);
    return;
  }
  pool().run([&](int tid) {
    for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) task(i, tid);
  });
}

// Sets S[i][j] = -inf where key k0 + j lies after query q0 + i (absolute positions).
void causal_mask(float* S, int64_t nq, int64_t nk, int64_t q0abs, int64_t k0) {
  for (int64_t i = 0; i < nq; i++) {
    int64_t first_masked = q0abs + i + 1 - k0;  // keys j >= this are in the future
    for (int64_t j = std::max<int64_t>(first_masked, 0); j < nk; j++) S[i * Bc + j] = -INFINITY;
  }
}
}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int64_t B, int64_t Tq, int64_t Tk, int64_t NH, int64_t NKV, int64_t HS) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const int64_t group = NH / NKV, offset = Tk - Tq;
  const int64_t ldq = NH * HS, ldk = NKV * HS;
  const int64_t nqb = (Tq + Br - 1) / Br;
  run_tasks(B * NH * nqb, [&](int64_t task, int) {
    // most expensive tiles (last query blocks) first
    const int64_t qb = nqb - 1 - task % nqb, bh = task / nqb, b = bh / NH, h = bh % NH, kh = h / group;
    const int64_t q0 = qb * Br, nq = std::min(Br, Tq - q0);
    thread_local std::vector<float> S, O, m, l;
    S.resize(Br * Bc);  // (Br, Bc) scores, then probabilities
    O.assign(Br * HS, 0.f);  // (Br, HS) unnormalised output
    m.assign(Br, -INFINITY);
    l.assign(Br, 0.f);
    const float* qt = q + ((b * Tq + q0) * NH + h) * HS;
    const int64_t kmax = q0 + nq - 1 + offset;  // last key any query of the tile sees
    for (int64_t k0 = 0; k0 <= kmax; k0 += Bc) {
      const int64_t nk = std::min({Bc, Tk - k0, kmax - k0 + 1});
      const float* kt = k + ((b * Tk + k0) * NKV + kh) * HS;
      const float* vt = v + ((b * Tk + k0) * NKV + kh) * HS;
      sgemm(false, true, nq, nk, HS, scale, qt, ldq, kt, ldk, 0.f, S.data(), Bc, false);
      if (k0 + nk - 1 > q0 + offset) causal_mask(S.data(), nq, nk, q0 + offset, k0);
      for (int64_t i = 0; i < nq; i++) {
        float* s = S.data() + i * Bc;
        float mnew = std::max(m[i], max_of(s, nk));
        float alpha = std::exp(m[i] - mnew);  // 0 on the first tile (m = -inf)
        l[i] = l[i] * alpha + static_cast<float>(exp_shift_sum(s, s, mnew, nk));
        if (alpha != 1.f)
          for (int64_t d = 0; d < HS; d++) O[i * HS + d] *= alpha;
        m[i] = mnew;
      }
      sgemm(false, false, nq, HS, nk, 1.f, S.data(), Bc, vt, ldk, 1.f, O.data(), HS, false);
    }
    for (int64_t i = 0; i < nq; i++) {
      float* o = out + ((b * Tq + q0 + i) * NH + h) * HS;
      const float inv = 1.f / l[i];
      for (int64_t d = 0; d < HS; d++) o[d] = O[i * HS + d] * inv;
      lse[(b * NH + h) * Tq + q0 + i] = m[i] + std::log(l[i]);
    }
  });
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                        const float* q, const float* k, const float* v, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const int64_t group = NH / NKV;
  const int64_t ldq = NH * HS, ldk = NKV * HS;
  // One task per (batch, key/value head): it owns dk/dv of that head and dq of the query heads
  // sharing it, so no two threads ever add into the same gradient rows.
  run_tasks(B * NKV, [&](int64_t task, int) {
    const int64_t b = task / NKV, kh = task % NKV;
    thread_local std::vector<float> P, dP, D;
    P.resize(Br * Bc);   // (Br, Bc) probabilities
    dP.resize(Br * Bc);  // (Br, Bc) dP, then dS
    D.resize(T);         // (T) rowsum(dout * out) per query
    for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
      for (int64_t t = 0; t < T; t++) {
        const int64_t o = ((b * T + t) * NH + h) * HS;
        D[t] = dot(dout + o, out + o, HS);
      }
      const float* L = lse + (b * NH + h) * T;
      for (int64_t k0 = 0; k0 < T; k0 += Bc) {
        const int64_t nk = std::min(Bc, T - k0);
        const float* kt = k + ((b * T + k0) * NKV + kh) * HS;
        const float* vt = v + ((b * T + k0) * NKV + kh) * HS;
        float* dkt = dk + ((b * T + k0) * NKV + kh) * HS;
        float* dvt = dv + ((b * T + k0) * NKV + kh) * HS;
        for (int64_t q0 = (k0 / Br) * Br; q0 < T; q0 += Br) {  // only query tiles that see these keys
          const int64_t nq = std::min(Br, T - q0);
          const float* qt = q + ((b * T + q0) * NH + h) * HS;
          const float* dot_ = dout + ((b * T + q0) * NH + h) * HS;
          float* dqt = dq + ((b * T + q0) * NH + h) * HS;
          sgemm(false, true, nq, nk, HS, scale, qt, ldq, kt, ldk, 0.f, P.data(), Bc, false);
          if (k0 + nk - 1 > q0) causal_mask(P.data(), nq, nk, q0, k0);
          for (int64_t i = 0; i < nq; i++) exp_shift_sum(P.data() + i * Bc, P.data() + i * Bc, L[q0 + i], nk);
          sgemm(true, false, nk, HS, nq, 1.f, P.data(), Bc, dot_, ldq, 1.f, dvt, ldk, false);  // dV += P^T dO
          sgemm(false, true, nq, nk, HS, 1.f, dot_, ldq, vt, ldk, 0.f, dP.data(), Bc, false);  // dP = dO V^T
          for (int64_t i = 0; i < nq; i++) {
            const float Di = D[q0 + i];
            float* ds = dP.data() + i * Bc;
            const float* p = P.data() + i * Bc;
            for (int64_t j = 0; j < nk; j++) ds[j] = p[j] * (ds[j] - Di);
          }
          sgemm(false, false, nq, HS, nk, scale, dP.data(), Bc, kt, ldk, 1.f, dqt, ldq, false);  // dQ += scale dS K
          sgemm(true, false, nk, HS, nq, scale, dP.data(), Bc, qt, ldq, 1.f, dkt, ldk, false);   // dK += scale dS^T Q
        }
      }
    }
  });
}

}  // namespace lc
