// Causal grouped-query attention in the flash style (Dao et al., FlashAttention-2), on CPU:
// queries and keys in tiles, an online softmax, and only the output and each query's log-sum-exp
// saved for backward. Memory is O(T); no T x T matrix exists.
//
// The tile products are small (64 x 64 x HS) and there are T^2 / 4096 of them per head, so a
// general GEMM call per tile (packing both operands each time) spent a third of its time packing.
// Instead each (batch, kv head)'s keys (and, for backward, values) are packed ONCE into 16-key
// panels, K^T-style, shared by every query tile and every query head of the group; the other
// products read their row-major operands in place. Two register-tiled kernels cover all six
// products:
//   tile_qk:  C (nq, 16 * np) = alpha * A (nq, HS) @ panels^T       S = Q K^T,  dP = dO V^T
//   tile_acc: C (nr, HS) += A (nr, nx) @ B (nx, HS)                 O += P V,   dV += P^T dO,
//             with A read through (row, col) strides, so P^T and     dQ += dS K, dK += dS^T Q
//             dS^T need no copy.
// With AVX2 + FMA and HS a multiple of 8 they run 6-row x 16-column register tiles (the sgemm
// micro-kernel's shape); otherwise plain loops (awkward head sizes are only ever tiny models).
// Accumulation is float32 in a fixed order, so results do not depend on the thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <type_traits>
#include <vector>

#include "ops.h"
#include "pool.h"
#include "simd.h"

namespace lc {

namespace {
constexpr int64_t Br = 64;  // query rows per tile
constexpr int64_t Bc = 64;  // keys per tile (a multiple of the 16-key panel)
constexpr int64_t PW = 16;  // keys per packed panel
constexpr int64_t MR = 6;   // rows per register tile

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

// The register-tiled kernels take their row count as a template parameter: tile(R, r0) runs rows
// [r0, r0 + R) for R = MR while MR rows remain, then once for the last 1..MR-1 rows (R is a
// std::integral_constant, so each count is its own fully unrolled kernel).
template <typename F>
LC_INLINE void row_tiles(int64_t n, F&& tile) {
  int64_t r0 = 0;
  for (; r0 + MR <= n; r0 += MR) tile(std::integral_constant<int, MR>{}, r0);
  switch (n - r0) {
    case 5: tile(std::integral_constant<int, 5>{}, r0); break;
    case 4: tile(std::integral_constant<int, 4>{}, r0); break;
    case 3: tile(std::integral_constant<int, 3>{}, r0); break;
    case 2: tile(std::integral_constant<int, 2>{}, r0); break;
    case 1: tile(std::integral_constant<int, 1>{}, r0); break;
    default: break;
  }
}
static_assert(MR == 6, "row_tiles' tail covers 1..5 rows");

// Packs rows x[0..n) (each HS floats, row stride ld) into ceil(n / PW) panels of (HS, PW):
// out[(p * HS + d) * PW + j] = x[p * PW + j][d], zero past n.
void pack_panels(float* out, const float* x, int64_t n, int64_t ld, int64_t HS) {
  const int64_t np = (n + PW - 1) / PW;
  for (int64_t p = 0; p < np; p++) {
    float* o = out + p * HS * PW;
#if defined(__AVX512F__)
    if (p * PW + PW <= n && HS % 16 == 0) {  // a full panel: 16 x 16 transposes (PW == 16)
      const float* x0 = x + p * PW * ld;
      for (int64_t d0 = 0; d0 < HS; d0 += 16) {
        __m512i r[16];
        for (int j = 0; j < 16; j++) r[j] = _mm512_castps_si512(_mm512_loadu_ps(x0 + j * ld + d0));
        transpose16x16_epi32(r);
        for (int d = 0; d < 16; d++) _mm512_storeu_si512(o + (d0 + d) * PW, r[d]);
      }
      continue;
    }
#endif
    for (int64_t j = 0; j < PW; j++) {
      const int64_t r = p * PW + j;
      if (r < n) {
        const float* xr = x + r * ld;
        for (int64_t d = 0; d < HS; d++) o[d * PW + j] = xr[d];
      } else {
        for (int64_t d = 0; d < HS; d++) o[d * PW + j] = 0.f;
      }
    }
  }
}

#if defined(__AVX2__) && defined(__FMA__)

// C rows [0, R) x 16 columns = alpha * A (R, HS) @ panel (HS, 16).
template <int R>
LC_INLINE void micro_qk(const float* A, int64_t lda, const float* P, int64_t HS, float alpha, float* C, int64_t ldc) {
  __m256 acc[R][2];
  LC_UNROLL for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t d = 0; d < HS; d++) {
    const __m256 b0 = _mm256_loadu_ps(P + d * PW), b1 = _mm256_loadu_ps(P + d * PW + 8);
    LC_UNROLL for (int r = 0; r < R; r++) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + d);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  const __m256 s = _mm256_set1_ps(alpha);
  LC_UNROLL for (int r = 0; r < R; r++) {
    _mm256_storeu_ps(C + r * ldc, _mm256_mul_ps(acc[r][0], s));
    _mm256_storeu_ps(C + r * ldc + 8, _mm256_mul_ps(acc[r][1], s));
  }
}

// C rows [0, R) x NV*8 columns += sum_x A(r, x) * B[x][cols], A(r, x) = A[r * ars + x * axs].
// No alpha: with 12 accumulators, 2 B vectors and a broadcast, a 16th live register (an alpha
// vector) makes the compiler spill a B vector on every iteration.
template <int R, int NV>
LC_INLINE void micro_acc(const float* A, int64_t ars, int64_t axs, int64_t nx, const float* B, int64_t ldb,
                         float* C, int64_t ldc) {
  __m256 acc[R][NV];
  LC_UNROLL for (int r = 0; r < R; r++)
    LC_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
  for (int64_t x = 0; x < nx; x++) {
    __m256 b[NV];
    LC_UNROLL for (int v = 0; v < NV; v++) b[v] = _mm256_loadu_ps(B + x * ldb + 8 * v);
    LC_UNROLL for (int r = 0; r < R; r++) {
      const __m256 a = _mm256_broadcast_ss(A + r * ars + x * axs);
      LC_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  LC_UNROLL for (int r = 0; r < R; r++)
    LC_UNROLL for (int v = 0; v < NV; v++) {
      float* c = C + r * ldc + 8 * v;
      _mm256_storeu_ps(c, _mm256_add_ps(acc[r][v], _mm256_loadu_ps(c)));
    }
}

template <int NV>
void acc_rows(const float* A, int64_t ars, int64_t axs, int64_t nr, int64_t nx, const float* B, int64_t ldb,
              float* C, int64_t ldc) {
  row_tiles(nr, [&](auto R, int64_t r0) LC_INLINE_LAMBDA { micro_acc<decltype(R)::value, NV>(A + r0 * ars, ars, axs, nx, B, ldb, C + r0 * ldc, ldc); });
}
#endif

#if defined(__AVX512F__)
// The float32 tiles at AVX-512 width: a 16-key panel is one register row, so S = Q K^T takes four
// panels at a time (24 of the 32 registers accumulate), then two or one for the rest, and the
// accumulating product 64, 32 or 16 columns (the bf16 tiles below likewise). (The same
// loops as the AVX2 tiles above. Written once over a vector-width type, the AVX2 S = Q K^T tile,
// which needs 15 of its 16 registers, spilled a B vector every iteration: attention 10-20% slower
// on the AVX2 build, measured; so each width keeps its own copy.)

// C rows [0, R) x NP panels of 16 columns = alpha * A (R, HS) @ panels^T.
template <int R, int NP>
LC_INLINE void micro_qk16(const float* A, int64_t lda, const float* P, int64_t HS, float alpha, float* C, int64_t ldc) {
  __m512 acc[R][NP];
  LC_UNROLL for (int r = 0; r < R; r++)
    LC_UNROLL for (int p = 0; p < NP; p++) acc[r][p] = _mm512_setzero_ps();
  for (int64_t d = 0; d < HS; d++) {
    __m512 b[NP];
    LC_UNROLL for (int p = 0; p < NP; p++) b[p] = _mm512_loadu_ps(P + (p * HS + d) * PW);
    LC_UNROLL for (int r = 0; r < R; r++) {
      const __m512 a = _mm512_set1_ps(A[r * lda + d]);
      LC_UNROLL for (int p = 0; p < NP; p++) acc[r][p] = _mm512_fmadd_ps(a, b[p], acc[r][p]);
    }
  }
  const __m512 s = _mm512_set1_ps(alpha);
  LC_UNROLL for (int r = 0; r < R; r++)
    LC_UNROLL for (int p = 0; p < NP; p++) _mm512_storeu_ps(C + r * ldc + p * PW, _mm512_mul_ps(acc[r][p], s));
}

template <int NP>
void qk_rows16(const float* A, int64_t lda, int64_t nq, const float* P, int64_t HS, float alpha, float* C, int64_t ldc) {
  row_tiles(nq, [&](auto R, int64_t i) LC_INLINE_LAMBDA { micro_qk16<decltype(R)::value, NP>(A + i * lda, lda, P, HS, alpha, C + i * ldc, ldc); });
}

// C rows [0, R) x NV*16 columns += sum_x A(r, x) * B[x][cols], A(r, x) = A[r * ars + x * axs].
template <int R, int NV>
LC_INLINE void micro_acc16(const float* A, int64_t ars, int64_t axs, int64_t nx, const float* B, int64_t ldb,
                           float* C, int64_t ldc) {
  __m512 acc[R][NV];
  LC_UNROLL for (int r = 0; r < R; r++)
    LC_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (int64_t x = 0; x < nx; x++) {
    __m512 b[NV];
    LC_UNROLL for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(B + x * ldb + 16 * v);
    LC_UNROLL for (int r = 0; r < R; r++) {
      const __m512 a = _mm512_set1_ps(A[r * ars + x * axs]);
      LC_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  LC_UNROLL for (int r = 0; r < R; r++)
    LC_UNROLL for (int v = 0; v < NV; v++) {
      float* c = C + r * ldc + 16 * v;
      _mm512_storeu_ps(c, _mm512_add_ps(acc[r][v], _mm512_loadu_ps(c)));
    }
}

template <int NV>
void acc_rows16(const float* A, int64_t ars, int64_t axs, int64_t nr, int64_t nx, const float* B, int64_t ldb,
                float* C, int64_t ldc) {
  row_tiles(nr, [&](auto R, int64_t r0) LC_INLINE_LAMBDA { micro_acc16<decltype(R)::value, NV>(A + r0 * ars, ars, axs, nx, B, ldb, C + r0 * ldc, ldc); });
}
#endif

// C (nq, PW * np) = alpha * A (nq, HS) @ panels^T; panels from pack_panels. Columns past the
// packed rows come out 0.
void tile_qk(const float* A, int64_t lda, int64_t nq, const float* panels, int64_t np, int64_t HS, float alpha,
             float* C, int64_t ldc) {
#if defined(__AVX512F__)
  int64_t p = 0;
  for (; p + 4 <= np; p += 4) qk_rows16<4>(A, lda, nq, panels + p * HS * PW, HS, alpha, C + p * PW, ldc);
  for (; p + 2 <= np; p += 2) qk_rows16<2>(A, lda, nq, panels + p * HS * PW, HS, alpha, C + p * PW, ldc);
  if (p < np) qk_rows16<1>(A, lda, nq, panels + p * HS * PW, HS, alpha, C + p * PW, ldc);
#elif defined(__AVX2__) && defined(__FMA__)
  for (int64_t p = 0; p < np; p++) {
    const float* P = panels + p * HS * PW;
    row_tiles(nq, [&](auto R, int64_t i) LC_INLINE_LAMBDA { micro_qk<decltype(R)::value>(A + i * lda, lda, P, HS, alpha, C + i * ldc + p * PW, ldc); });
  }
#else
  for (int64_t i = 0; i < nq; i++)
    for (int64_t p = 0; p < np; p++)
      for (int64_t j = 0; j < PW; j++) {
        float s = 0.f;
        for (int64_t d = 0; d < HS; d++) s += A[i * lda + d] * panels[(p * HS + d) * PW + j];
        C[i * ldc + p * PW + j] = alpha * s;
      }
#endif
}

// C (nr, HS) += A (nr, nx) @ B (nx, HS), A(r, x) = A[r * ars + x * axs], B row-major (ldb).
void tile_acc(const float* A, int64_t ars, int64_t axs, int64_t nr, int64_t nx, const float* B, int64_t ldb,
              int64_t HS, float* C, int64_t ldc) {
#if defined(__AVX512F__)
  if (HS % 16 == 0) {
    int64_t c0 = 0;
    for (; c0 + 64 <= HS; c0 += 64) acc_rows16<4>(A, ars, axs, nr, nx, B + c0, ldb, C + c0, ldc);
    for (; c0 + 32 <= HS; c0 += 32) acc_rows16<2>(A, ars, axs, nr, nx, B + c0, ldb, C + c0, ldc);
    if (c0 < HS) acc_rows16<1>(A, ars, axs, nr, nx, B + c0, ldb, C + c0, ldc);
    return;
  }
#endif
#if defined(__AVX2__) && defined(__FMA__)
  if (HS % 8 == 0) {
    int64_t c0 = 0;
    for (; c0 + 16 <= HS; c0 += 16) acc_rows<2>(A, ars, axs, nr, nx, B + c0, ldb, C + c0, ldc);
    if (c0 < HS) acc_rows<1>(A, ars, axs, nr, nx, B + c0, ldb, C + c0, ldc);
    return;
  }
#endif
  for (int64_t r = 0; r < nr; r++) {
    float* c = C + r * ldc;
    for (int64_t x = 0; x < nx; x++) {
      const float a = A[r * ars + x * axs];
      const float* b = B + x * ldb;
      for (int64_t d = 0; d < HS; d++) c[d] += a * b[d];
    }
  }
}

// The bf16 tile functions, declared in every build so that the attention templates below compile;
// they are defined, and the bf16 instantiations used, only in the avx512bf16 build.
using pair_t = uint32_t;
void bf16_rows(pair_t* dst, int64_t ldd, const float* src, int64_t ld, int64_t n, int64_t m);
#if !defined(__AVX512BF16__)
void bf16_row_pairs(pair_t* dst, int64_t ldd, const float* src, int64_t ld, int64_t n, int64_t m, int64_t width);  // simd.h
#endif
void bf16_panels(pair_t* out, const float* x, int64_t n, int64_t ld, int64_t HS);
void tile_qk_bf16(const pair_t* A, int64_t lda, int64_t nq, const pair_t* panels, int64_t np, int64_t HS, float alpha,
                  float* C, int64_t ldc);
void tile_acc_bf16(const pair_t* A, int64_t ars, int64_t axs, int64_t nr, int64_t nxp, const pair_t* B, int64_t ldb,
                   int64_t HS, float* C, int64_t ldc);
void probs_bf16(float* P, const float* L, int64_t nr, int64_t kc, pair_t* Ptb);
void dscores_bf16(const float* P, const float* dP, const float* D, float scale, int64_t nr, int64_t kc, pair_t* dSb,
                  pair_t* dStb);

#if defined(__AVX512BF16__)
// ---------------------------------------------------------------------------------------------
// bfloat16 tiles (Precision::bf16 on the avx512bf16 build; HS a multiple of 16). The same six
// products, their operands rounded to bfloat16 and held as 32-bit pairs of consecutive elements
// along the contraction (the low half first), the operand layout of vdpbf16ps; sums in float32.
// An odd count pairs its last element with 0.

// dst[r * ldd + cp] = pair(src[r * ld + 2cp], src[r * ld + 2cp + 1]), r < n, 2cp < m:
// rows converted in place order (pairs along each row).
void bf16_rows(pair_t* dst, int64_t ldd, const float* src, int64_t ld, int64_t n, int64_t m) {
  for (int64_t r = 0; r < n; r++) {
    const float* s = src + r * ld;
    pair_t* d = dst + r * ldd;
    for (int64_t c = 0; c < m; c += 32) {
      const int64_t rem = std::min<int64_t>(32, m - c);
      const __mmask16 lo = rem >= 16 ? __mmask16(0xffff) : __mmask16((1u << rem) - 1);
      const __mmask16 hi = rem > 16 ? __mmask16((1u << (rem - 16)) - 1) : __mmask16(0);
      // cvtne2ps_pbh(a, b): b's 16 values first, then a's
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, s + c + 16), _mm512_maskz_loadu_ps(lo, s + c));
      const int64_t np = (rem + 1) / 2;
      _mm512_mask_storeu_epi32(d + c / 2, np >= 16 ? __mmask16(0xffff) : __mmask16((1u << np) - 1), (__m512i)v);
    }
  }
}

// Key panels for S = Q K^T (and dP = dO V^T): rows x[0..n) -> ceil(n / PW) panels of (HS / 2, PW)
// pairs along HS: out[(p * HS2 + dp) * PW + j] = pair(x[p * PW + j][2dp], x[p * PW + j][2dp + 1]).
void bf16_panels(pair_t* out, const float* x, int64_t n, int64_t ld, int64_t HS) {
  for (int64_t p = 0; p * PW < n; p++)
    pack_pairs_from_cols(x + p * PW * ld, ld, HS, PW, static_cast<int>(std::min(PW, n - p * PW)), out + p * (HS / 2) * PW);
}

// C rows [0, R) x NP panels of 16 columns = alpha * A (R, HS) @ panels^T; A rows of pairs (lda pairs apart).
template <int R, int NP>
LC_INLINE void micro_qk_bf16(const pair_t* A, int64_t lda, const pair_t* P, int64_t HS2, float alpha, float* C, int64_t ldc) {
  __m512 acc[R][NP];
  LC_UNROLL for (int r = 0; r < R; r++)
    LC_UNROLL for (int p = 0; p < NP; p++) acc[r][p] = _mm512_setzero_ps();
  for (int64_t dp = 0; dp < HS2; dp++) {
    __m512bh b[NP];
    LC_UNROLL for (int p = 0; p < NP; p++) b[p] = (__m512bh)_mm512_loadu_si512(P + (p * HS2 + dp) * PW);
    LC_UNROLL for (int r = 0; r < R; r++) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(A[r * lda + dp]));
      LC_UNROLL for (int p = 0; p < NP; p++) acc[r][p] = _mm512_dpbf16_ps(acc[r][p], a, b[p]);
    }
  }
  const __m512 s = _mm512_set1_ps(alpha);
  LC_UNROLL for (int r = 0; r < R; r++)
    LC_UNROLL for (int p = 0; p < NP; p++) _mm512_storeu_ps(C + r * ldc + p * PW, _mm512_mul_ps(acc[r][p], s));
}

template <int NP>
void qk_rows_bf16(const pair_t* A, int64_t lda, int64_t nq, const pair_t* P, int64_t HS2, float alpha, float* C, int64_t ldc) {
  row_tiles(nq, [&](auto R, int64_t i) LC_INLINE_LAMBDA { micro_qk_bf16<decltype(R)::value, NP>(A + i * lda, lda, P, HS2, alpha, C + i * ldc, ldc); });
}

// C (nq, PW * np) = alpha * A (nq, HS) @ panels^T (bf16_panels), A rows from bf16_rows.
void tile_qk_bf16(const pair_t* A, int64_t lda, int64_t nq, const pair_t* panels, int64_t np, int64_t HS, float alpha,
                  float* C, int64_t ldc) {
  const int64_t HS2 = HS / 2;
  int64_t p = 0;
  for (; p + 4 <= np; p += 4) qk_rows_bf16<4>(A, lda, nq, panels + p * HS2 * PW, HS2, alpha, C + p * PW, ldc);
  for (; p + 2 <= np; p += 2) qk_rows_bf16<2>(A, lda, nq, panels + p * HS2 * PW, HS2, alpha, C + p * PW, ldc);
  if (p < np) qk_rows_bf16<1>(A, lda, nq, panels + p * HS2 * PW, HS2, alpha, C + p * PW, ldc);
}

// C rows [0, R) x NV*16 columns += sum_xp A(r, xp) . B[xp][cols] (pairs), A(r, xp) = A[r * ars + xp * axs].
template <int R, int NV>
LC_INLINE void micro_acc_bf16(const pair_t* A, int64_t ars, int64_t axs, int64_t nxp, const pair_t* B, int64_t ldb,
                              float* C, int64_t ldc) {
  __m512 acc[R][NV];
  LC_UNROLL for (int r = 0; r < R; r++)
    LC_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (int64_t xp = 0; xp < nxp; xp++) {
    __m512bh b[NV];
    LC_UNROLL for (int v = 0; v < NV; v++) b[v] = (__m512bh)_mm512_loadu_si512(B + xp * ldb + 16 * v);
    LC_UNROLL for (int r = 0; r < R; r++) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(A[r * ars + xp * axs]));
      LC_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
    }
  }
  LC_UNROLL for (int r = 0; r < R; r++)
    LC_UNROLL for (int v = 0; v < NV; v++) {
      float* c = C + r * ldc + 16 * v;
      _mm512_storeu_ps(c, _mm512_add_ps(acc[r][v], _mm512_loadu_ps(c)));
    }
}

template <int NV>
void acc_rows_bf16(const pair_t* A, int64_t ars, int64_t axs, int64_t nr, int64_t nxp, const pair_t* B, int64_t ldb,
                   float* C, int64_t ldc) {
  row_tiles(nr, [&](auto R, int64_t r0) LC_INLINE_LAMBDA { micro_acc_bf16<decltype(R)::value, NV>(A + r0 * ars, ars, axs, nxp, B, ldb, C + r0 * ldc, ldc); });
}

// C (nr, HS) += A (nr, nx) @ B (nx, HS): A(r, xp) pairs at A[r * ars + xp * axs], B rows of pairs
// (bf16_row_pairs, ldb pairs apart), nxp = ceil(nx / 2).
void tile_acc_bf16(const pair_t* A, int64_t ars, int64_t axs, int64_t nr, int64_t nxp, const pair_t* B, int64_t ldb,
                   int64_t HS, float* C, int64_t ldc) {
  int64_t c0 = 0;
  for (; c0 + 64 <= HS; c0 += 64) acc_rows_bf16<4>(A, ars, axs, nr, nxp, B + c0, ldb, C + c0, ldc);
  for (; c0 + 32 <= HS; c0 += 32) acc_rows_bf16<2>(A, ars, axs, nr, nxp, B + c0, ldb, C + c0, ldc);
  if (c0 < HS) acc_rows_bf16<1>(A, ars, axs, nr, nxp, B + c0, ldb, C + c0, ldc);
}

// The backward's elementwise work on one tile, two query rows at a time so that each result is
// converted to the pairs its products read while still in registers (separate conversion passes
// re-read the tile: 6% of the bf16 backward).
// Rows [0, nr) x kc of the tile (row stride Bc): P = exp(S - L[i]) in place (float32, for dS), and
// P^T paired along queries, Ptb[ip * Bc + j] = pair(P[2ip][j], P[2ip + 1][j]) for j < kc. The exp
// is bfloat16-grade (exp16_nonpos_bf16): P goes into bf16 products, and dS is rounded to bf16 too
// (small's layer, alternated: forward -4.5-5%, backward -2-5%).
void probs_bf16(float* P, const float* L, int64_t nr, int64_t kc, pair_t* Ptb) {
  const int64_t nv = (kc + 15) / 16;
  const __mmask16 tail = static_cast<__mmask16>(kc % 16 ? (1u << (kc % 16)) - 1 : 0xffff);
  for (int64_t ip = 0; ip < (nr + 1) / 2; ip++) {
    float* pa = P + 2 * ip * Bc;
    float* pb = pa + Bc;
    const bool has_b = 2 * ip + 1 < nr;
    const __m512 la = _mm512_set1_ps(L[2 * ip]), lb = _mm512_set1_ps(has_b ? L[2 * ip + 1] : 0.f);
    for (int64_t c = 0; c < nv; c++) {
      const __mmask16 mk = c + 1 == nv ? tail : __mmask16(0xffff);
      const __m512 ea = _mm512_maskz_mov_ps(mk, exp16_nonpos_bf16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, pa + 16 * c), la)));
      __m512 eb = _mm512_setzero_ps();
      if (has_b) eb = _mm512_maskz_mov_ps(mk, exp16_nonpos_bf16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, pb + 16 * c), lb)));
      _mm512_mask_storeu_ps(pa + 16 * c, mk, ea);
      if (has_b) _mm512_mask_storeu_ps(pb + 16 * c, mk, eb);
      _mm512_mask_storeu_epi32(Ptb + ip * Bc + 16 * c, mk, bf16_interleave(ea, eb));
    }
  }
}

// dS = scale P (dP - D[i]) for rows [0, nr) x kc (row stride Bc), written only as bf16: paired
// along keys, dSb[i * Bc/2 + jp] = pair(dS[i][2jp], dS[i][2jp + 1]), and along queries,
// dStb[ip * Bc + j] = pair(dS[2ip][j], dS[2ip + 1][j]).
void dscores_bf16(const float* P, const float* dP, const float* D, float scale, int64_t nr, int64_t kc, pair_t* dSb,
                  pair_t* dStb) {
  constexpr int NV = Bc / 16;
  const int nv = static_cast<int>((kc + 15) / 16);
  const __mmask16 tail = static_cast<__mmask16>(kc % 16 ? (1u << (kc % 16)) - 1 : 0xffff);
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t ip = 0; ip < (nr + 1) / 2; ip++) {
    const int64_t a = 2 * ip;
    const bool has_b = a + 1 < nr;
    __m512 da[NV], db[NV];
    const __m512 Da = _mm512_set1_ps(D[a]), Db = _mm512_set1_ps(has_b ? D[a + 1] : 0.f);
    LC_UNROLL for (int c = 0; c < NV; c++) {
      if (c >= nv) break;
      const __mmask16 mk = c + 1 == nv ? tail : __mmask16(0xffff);
      const float *p = P + a * Bc + 16 * c, *dp = dP + a * Bc + 16 * c;
      // (lanes past kc exactly +0, whatever D is: they pad the last pair)
      da[c] = _mm512_maskz_mul_ps(mk, _mm512_mul_ps(sc, _mm512_loadu_ps(p)), _mm512_sub_ps(_mm512_loadu_ps(dp), Da));
      db[c] = has_b ? _mm512_maskz_mul_ps(mk, _mm512_mul_ps(sc, _mm512_loadu_ps(p + Bc)), _mm512_sub_ps(_mm512_loadu_ps(dp + Bc), Db))
                    : _mm512_setzero_ps();
      _mm512_mask_storeu_epi32(dStb + ip * Bc + 16 * c, mk, bf16_interleave(da[c], db[c]));
    }
    LC_UNROLL for (int c = 0; c < NV; c += 2) {
      if (c >= nv) break;
      const int64_t np = std::min<int64_t>(16, (kc - 16 * c + 1) / 2);
      const __mmask16 mk = static_cast<__mmask16>(np >= 16 ? 0xffff : (1u << np) - 1);
      const __m512 ha = c + 1 < nv ? da[c + 1] : _mm512_setzero_ps();  // cvtne2ps_pbh(hi, lo): lo's values first
      _mm512_mask_storeu_epi32(dSb + a * (Bc / 2) + 8 * c, mk, (__m512i)_mm512_cvtne2ps_pbh(ha, da[c]));
      if (has_b) {
        const __m512 hb = c + 1 < nv ? db[c + 1] : _mm512_setzero_ps();
        _mm512_mask_storeu_epi32(dSb + (a + 1) * (Bc / 2) + 8 * c, mk, (__m512i)_mm512_cvtne2ps_pbh(hb, db[c]));
      }
    }
  }
}
#endif

// dst (n, HS) contiguous = rows of src at stride ld. Tile operands read row by row must be
// contiguous: rows NH*HS floats apart (2 KiB for 8 heads of 64) all fall into two L1 sets.
void gather_rows(float* dst, const float* src, int64_t n, int64_t ld, int64_t HS) {
  for (int64_t r = 0; r < n; r++) copy_floats(dst + r * HS, src + r * ld, HS);
}

// dst rows at stride ld += src (n, HS) contiguous, or = src when not accumulating.
void scatter_rows(float* dst, const float* src, int64_t n, int64_t ld, int64_t HS, bool accumulate) {
  if (!accumulate) {
    for (int64_t r = 0; r < n; r++) copy_floats(dst + r * ld, src + r * HS, HS);
    return;
  }
  for (int64_t r = 0; r < n; r++)
    for (int64_t d = 0; d < HS; d++) dst[r * ld + d] += src[r * HS + d];
}

// Every (batch, kv head)'s rows of x (B, T, NKV, HS), contiguous: out (B, NKV, T, HS) in buf.
const float* contiguous_heads(std::vector<float>& buf, const float* x, int64_t B, int64_t T, int64_t NKV, int64_t HS) {
  float* out = scratch(buf, static_cast<size_t>(B * NKV * T * HS));
  run_tasks(B * NKV, [&](int64_t bk, int) {
    const int64_t b = bk / NKV, kh = bk % NKV;
    gather_rows(out + bk * T * HS, x + (b * T * NKV + kh) * HS, T, NKV * HS, HS);
  });
  return out;
}

// Packs every (batch, kv head)'s rows of x (B, T, NKV, HS) into panels: out (B, NKV, np, HS, PW) in buf.
const float* packed_heads(std::vector<float>& buf, const float* x, int64_t B, int64_t T, int64_t NKV, int64_t HS) {
  const int64_t np = (T + PW - 1) / PW, per = np * HS * PW;
  float* out = scratch(buf, static_cast<size_t>(B * NKV * per));
  run_tasks(B * NKV, [&](int64_t bk, int) {
    const int64_t b = bk / NKV, kh = bk % NKV;
    pack_panels(out + bk * per, x + (b * T * NKV + kh) * HS, T, NKV * HS, HS);
  });
  return out;
}

// bf16: every (batch, kv head)'s rows of x (B, T, NKV, HS) as key panels, out (B, NKV, np, HS / 2, PW) in buf.
const pair_t* bf16_panel_heads(std::vector<pair_t>& buf, const float* x, int64_t B, int64_t T, int64_t NKV, int64_t HS) {
  const int64_t np = (T + PW - 1) / PW, per = np * (HS / 2) * PW;
  pair_t* out = scratch(buf, static_cast<size_t>(B * NKV * per));
  run_tasks(B * NKV, [&](int64_t bk, int) {
    const int64_t b = bk / NKV, kh = bk % NKV;
    bf16_panels(out + bk * per, x + (b * T * NKV + kh) * HS, T, NKV * HS, HS);
  });
  return out;
}

// bf16: every (batch, kv head)'s rows of x as pairs of consecutive rows, out (B, NKV, ceil(T / 2), HS) in buf.
const pair_t* bf16_pair_heads(std::vector<pair_t>& buf, const float* x, int64_t B, int64_t T, int64_t NKV, int64_t HS) {
  const int64_t per = (T + 1) / 2 * HS;
  pair_t* out = scratch(buf, static_cast<size_t>(B * NKV * per));
  run_tasks(B * NKV, [&](int64_t bk, int) {
    const int64_t b = bk / NKV, kh = bk % NKV;
    bf16_row_pairs(out + bk * per, HS, x + (b * T * NKV + kh) * HS, NKV * HS, T, HS, HS);
  });
  return out;
}

#if defined(__AVX512F__)
// v[j]'s lanes summed (or maxed), for j < 16, as lane j of one vector: four levels that each add
// (max) the even and odd lanes of two vectors side by side, 45 instructions for 16 rows where a
// horizontal reduction per row takes 128 in 16 dependent chains.
template <bool Max>
LC_INLINE __m512 reduce16(__m512 v[16]) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  LC_UNROLL for (int n = 16; n > 1; n /= 2)
    LC_UNROLL for (int j = 0; j < n / 2; j++) {
      const __m512 e = _mm512_permutex2var_ps(v[2 * j], even, v[2 * j + 1]), o = _mm512_permutex2var_ps(v[2 * j], odd, v[2 * j + 1]);
      v[j] = Max ? _mm512_max_ps(e, o) : _mm512_add_ps(e, o);
    }
  return v[0];
}

// The forward's online softmax for rows [0, nr) of a score tile S (row stride Bc) against its
// first kc keys: m (running max), l (running sum) and O (rows of HS, HS % 16 == 0) rescaled by
// exp(m - mnew), the exps stored in S as float32 or, for bf16, only as pairs along keys in Pb
// (Bc/2 per row). 16 rows at a time: the row maxima and sums reduced by reduce16, and O rescaled
// unconditionally (at HS = 32, two vector multiplies: cheaper than a data-dependent branch).
template <bool BF>
void online_softmax16(float* S, pair_t* Pb, int64_t nr, int64_t kc, float* m, float* l, float* O, int64_t HS) {
  constexpr int NV = Bc / 16;
  const int nv = static_cast<int>((kc + 15) / 16);
  const __mmask16 tail = static_cast<__mmask16>(kc % 16 ? (1u << (kc % 16)) - 1 : 0xffff);
  for (int64_t i0 = 0; i0 < nr; i0 += 16) {
    const int n = static_cast<int>(std::min<int64_t>(16, nr - i0));
    const __mmask16 rows = static_cast<__mmask16>(n == 16 ? 0xffff : (1u << n) - 1);
    __m512 v[16];
    for (int i = 0; i < 16; i++) {
      __m512 mx = _mm512_set1_ps(-INFINITY);
      if (i < n) {
        const float* s = S + (i0 + i) * Bc;
        LC_UNROLL for (int c = 0; c < NV; c++)
          if (c < nv) mx = _mm512_max_ps(_mm512_mask_loadu_ps(mx, c + 1 == nv ? tail : __mmask16(0xffff), s + 16 * c), mx);
      }
      v[i] = mx;
    }
    const __m512 mold = _mm512_mask_loadu_ps(_mm512_setzero_ps(), rows, m + i0);
    const __m512 mnew = _mm512_max_ps(mold, reduce16<true>(v));
    // alpha = exp(m - mnew): 0 on the first tile (m = -inf), 1 where the max did not move
    const __m512 alpha = exp16_nonpos(_mm512_sub_ps(mold, mnew));
    alignas(64) float mn[16], al[16];
    _mm512_store_ps(mn, mnew);
    _mm512_store_ps(al, alpha);
    for (int i = 0; i < 16; i++) {
      __m512 acc = _mm512_setzero_ps();
      if (i < n) {
        float* s = S + (i0 + i) * Bc;
        const __m512 sh = _mm512_set1_ps(mn[i]);
        __m512 e[NV];
        LC_UNROLL for (int c = 0; c < NV; c++) {
          if (c >= nv) break;
          const __mmask16 mk = c + 1 == nv ? tail : __mmask16(0xffff);
          const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + 16 * c), sh);
          e[c] = _mm512_maskz_mov_ps(mk, BF ? exp16_nonpos_bf16(x) : exp16_nonpos(x));  // bf16: P is rounded next
          acc = _mm512_add_ps(acc, e[c]);
          if constexpr (!BF) _mm512_mask_storeu_ps(s + 16 * c, mk, e[c]);
        }
#if defined(__AVX512BF16__)  // (BF is only instantiated there)
        if constexpr (BF) {
          // two vectors -> 16 pairs; the cvtne2ps_pbh(a, b) puts b's 16 values first
          pair_t* pb = Pb + (i0 + i) * (Bc / 2);
          LC_UNROLL for (int c = 0; c < NV; c += 2) {
            if (c >= nv) break;
            const __m512 hi = c + 1 < nv ? e[c + 1] : _mm512_setzero_ps();
            const int64_t np = std::min<int64_t>(16, (kc - 16 * c + 1) / 2);
            _mm512_mask_storeu_epi32(pb + 8 * c, static_cast<__mmask16>(np >= 16 ? 0xffff : (1u << np) - 1),
                                     (__m512i)_mm512_cvtne2ps_pbh(hi, e[c]));
          }
        }
#endif
        const __m512 a = _mm512_set1_ps(al[i]);
        float* o = O + (i0 + i) * HS;
        for (int64_t d = 0; d < HS; d += 16) _mm512_storeu_ps(o + d, _mm512_mul_ps(_mm512_loadu_ps(o + d), a));
      }
      v[i] = acc;
    }
    const __m512 lnew = _mm512_fmadd_ps(_mm512_mask_loadu_ps(_mm512_setzero_ps(), rows, l + i0), alpha, reduce16<false>(v));
    _mm512_mask_storeu_ps(l + i0, rows, lnew);
    _mm512_mask_storeu_ps(m + i0, rows, mnew);
  }
}
#endif

// Sets S[i][j] = -inf where key k0 + j lies after query q0 + i (absolute positions).
void causal_mask(float* S, int64_t nq, int64_t nk, int64_t q0abs, int64_t k0) {
  for (int64_t i = 0; i < nq; i++) {
    int64_t first_masked = q0abs + i + 1 - k0;  // keys j >= this are in the future
    for (int64_t j = std::max<int64_t>(first_masked, 0); j < nk; j++) S[i * Bc + j] = -INFINITY;
  }
}

// BF: the two products in bfloat16 (S = Q K^T from bf16 panels, O += P V from bf16 pairs).
template <bool BF>
void attention_forward_impl(float* out, float* lse, const float* q, const float* k, const float* v,
                            int64_t B, int64_t Tq, int64_t Tk, int64_t NH, int64_t NKV, int64_t HS) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const int64_t group = NH / NKV, offset = Tk - Tq;
  const int64_t ldq = NH * HS, ldk = NKV * HS;
  const int64_t nqb = (Tq + Br - 1) / Br;
  const int64_t npk = (Tk + PW - 1) / PW;  // key panels per head
  // Packing pays off when many query rows reuse the keys. A few rows (decoding from a KV cache:
  // Tq = 1 per generated token) read each key once, so copying the whole cache first would cost as
  // much as the attention itself: they take dot products against K and V in place.
  const bool direct = !BF && Tq < PW;  // (bf16 is chosen only for Tq >= PW)
  thread_local std::vector<float> kbuf, vbuf;
  thread_local std::vector<pair_t> kbfbuf, vbfbuf;
  const float* kp = direct || BF ? nullptr : packed_heads(kbuf, k, B, Tk, NKV, HS);      // (B, NKV, npk, HS, PW)
  const float* vc = direct || BF ? nullptr : contiguous_heads(vbuf, v, B, Tk, NKV, HS);  // (B, NKV, Tk, HS)
  const pair_t* kbf = BF ? bf16_panel_heads(kbfbuf, k, B, Tk, NKV, HS) : nullptr;  // (B, NKV, npk, HS/2, PW)
  const pair_t* vbf = BF ? bf16_pair_heads(vbfbuf, v, B, Tk, NKV, HS) : nullptr;   // (B, NKV, ceil(Tk/2), HS)
  run_tasks(B * NH * nqb, [&](int64_t task, int) {
    // most expensive tiles (last query blocks) first
    const int64_t qb = nqb - 1 - task % nqb, bh = task / nqb, b = bh / NH, h = bh % NH, kh = h / group;
    const int64_t q0 = qb * Br, nq = std::min(Br, Tq - q0);
    thread_local std::vector<float> S, O, m, l, mnew, alpha;
    thread_local std::vector<pair_t> Qb, Pb;
    S.resize(Br * Bc);       // (Br, Bc) scores, then probabilities
    O.assign(Br * HS, 0.f);  // (Br, HS) unnormalised output
    m.assign(Br, -INFINITY);
    l.assign(Br, 0.f);
    mnew.resize(Br);   // (Br) the running max after this tile
    alpha.resize(Br);  // (Br) exp(old max - new max)
    const float* qt = q + ((b * Tq + q0) * NH + h) * HS;
    const float* kph = direct || BF ? nullptr : kp + (b * NKV + kh) * npk * HS * PW;
    if constexpr (BF) {
      Qb.resize(Br * HS / 2);  // (Br, HS/2) this tile's queries
      Pb.resize(Br * Bc / 2);  // (Br, Bc/2) probabilities
      bf16_rows(Qb.data(), HS / 2, qt, ldq, nq, HS);
    }
    const int64_t kmax = q0 + nq - 1 + offset;  // last key any query of the tile sees
    for (int64_t k0 = 0; k0 <= kmax; k0 += Bc) {
      const int64_t nk = std::min({Bc, Tk - k0, kmax - k0 + 1});
      const float* vt = BF ? nullptr : direct ? v + ((b * Tk + k0) * NKV + kh) * HS : vc + ((b * NKV + kh) * Tk + k0) * HS;
      const int64_t ldv = direct ? ldk : HS;
      // Rows [r0, r1) of the tile against its first kc keys: S = scale Q K^T, the causal mask, the
      // online softmax (every row's new running max, then all the rows' rescale factors in one
      // vector exp, 0 on the first tile where m = -inf, then each row's exps and their sum), O += P V.
      // With AVX-512 and HS % 16 == 0, online_softmax16 does the softmax 16 rows at a time (and
      // converts P for bf16 in the same pass): forward time -17% bf16, -12% float32, against per-row
      // reductions and a separate conversion pass. The per-row code (and mnew, alpha) serves the
      // other builds and head sizes.
      auto rows = [&](int64_t r0, int64_t r1, int64_t kc) {
        const int64_t nr = r1 - r0;
        float* Sr = S.data() + r0 * Bc;
        if constexpr (BF) {
          tile_qk_bf16(Qb.data() + r0 * (HS / 2), HS / 2, nr, kbf + ((b * NKV + kh) * npk + k0 / PW) * (HS / 2) * PW,
                       (kc + PW - 1) / PW, HS, scale, Sr, Bc);
        } else if (direct) {
          const float* kt = k + ((b * Tk + k0) * NKV + kh) * HS;
          for (int64_t i = r0; i < r1; i++)
            for (int64_t j = 0; j < kc; j++) S[i * Bc + j] = scale * dot(qt + i * ldq, kt + j * ldk, HS);
        } else {
          tile_qk(qt + r0 * ldq, ldq, nr, kph + (k0 / PW) * HS * PW, (kc + PW - 1) / PW, HS, scale, Sr, Bc);
        }
        if (k0 + kc - 1 > q0 + r0 + offset) causal_mask(Sr, nr, kc, q0 + r0 + offset, k0);
#if defined(__AVX512F__)
        if (HS % 16 == 0) {
          online_softmax16<BF>(Sr, BF ? Pb.data() + r0 * (Bc / 2) : nullptr, nr, kc, m.data() + r0, l.data() + r0, O.data() + r0 * HS, HS);
        } else
#endif
        {
          for (int64_t i = r0; i < r1; i++) {
            mnew[i] = std::max(m[i], max_of(S.data() + i * Bc, kc));
            alpha[i] = m[i] - mnew[i];
          }
          exp_shift_sum_short(alpha.data() + r0, alpha.data() + r0, 0.f, nr);
          for (int64_t i = r0; i < r1; i++) {
            float* s = S.data() + i * Bc;
            l[i] = l[i] * alpha[i] + exp_shift_sum_short(s, s, mnew[i], kc);
            if (alpha[i] != 1.f)
              for (int64_t d = 0; d < HS; d++) O[i * HS + d] *= alpha[i];
            m[i] = mnew[i];
          }
          if constexpr (BF) bf16_rows(Pb.data() + r0 * (Bc / 2), Bc / 2, Sr, Bc, nr, kc);
        }
        if constexpr (BF) {  // O += P V
          tile_acc_bf16(Pb.data() + r0 * (Bc / 2), Bc / 2, 1, nr, (kc + 1) / 2, vbf + ((b * NKV + kh) * ((Tk + 1) / 2) + k0 / 2) * HS,
                        HS, HS, O.data() + r0 * HS, HS);
        } else {
          tile_acc(Sr, Bc, 1, nr, kc, vt, ldv, HS, O.data() + r0 * HS, HS);  // O += P V
        }
      };
      if (k0 + nk - 1 <= q0 + offset) {
        rows(0, nq, nk);  // every row sees every key of the tile
      } else {
        // The tile crosses the causal cut: in 16-row chunks, each against only the keys its last
        // row sees (on the diagonal tile 10/16 of the products, exps and masking of the whole tile).
        for (int64_t r0 = 0; r0 < nq; r0 += PW) {
          const int64_t r1 = std::min(nq, r0 + PW), kc = std::min(nk, q0 + r1 - 1 + offset - k0 + 1);
          if (kc > 0) rows(r0, r1, kc);  // (kc <= 0: no row of the chunk sees a key here; its state stays)
        }
      }
    }
    for (int64_t i = 0; i < nq; i++) {
      float* o = out + ((b * Tq + q0 + i) * NH + h) * HS;
      const float inv = 1.f / l[i];
      for (int64_t d = 0; d < HS; d++) o[d] = O[i * HS + d] * inv;
      lse[(b * NH + h) * Tq + q0 + i] = m[i] + std::log(l[i]);
    }
  });
}

// BF: the four products in bfloat16, their operands paired along each product's contraction.
template <bool BF>
void attention_backward_impl(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                             const float* q, const float* k, const float* v, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                             int64_t HS, bool accumulate) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const int64_t group = NH / NKV;
  const int64_t ldq = NH * HS, ldk = NKV * HS;
  const int64_t np = (T + PW - 1) / PW;
  const int64_t HS2 = HS / 2, T2 = (T + 1) / 2;
  // D = rowsum(dout * out) per (batch, head, query), in one pass over both in memory order: read
  // head by head inside the tasks, the same rows came in 2-4 cache lines at a time, 1-2 KiB apart.
  thread_local std::vector<float> Dbuf;
  float* Dall = scratch(Dbuf, static_cast<size_t>(B * NH * T));  // (B, NH, T)
  parallel_for(B * T, 1, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; n++) {
      const int64_t b = n / T, t = n % T;
      for (int64_t h = 0; h < NH; h++) Dall[(b * NH + h) * T + t] = dot(dout + (n * NH + h) * HS, out + (n * NH + h) * HS, HS);
    }
  });
  // One task per (batch, key/value head): it owns dk/dv of that head and dq of the query heads
  // sharing it, so no two threads ever add into the same gradient rows. (Each task reads its rows
  // of q, k, v and dout and writes dq, dk, dv once, from and to memory: ~22% of small's bf16
  // backward. Prefetching the next task's rows a slice per tile while this one computes gained
  // nothing, alternated: small step 1.017x bf16, 0.995x fp32.)
  run_tasks(B * NKV, [&](int64_t task, int) {
    const int64_t b = task / NKV, kh = task % NKV;
    thread_local std::vector<float> P, dP, Kc, Qc, dOc, dQc, dKc, dVc;
    // bf16 operands: queries and output gradients as rows (pairs along HS) and as row pairs, the
    // tile's P^T, dS and dS^T as pairs along their contraction
    thread_local std::vector<pair_t> Qb, dOb, Qp, dOp, Ptb, dSb, dStb;
    if constexpr (BF) {
      Qb.resize(T * HS2);   // (T, HS/2)
      dOb.resize(T * HS2);  // (T, HS/2)
      Qp.resize(T2 * HS);   // (T/2, HS)
      dOp.resize(T2 * HS);  // (T/2, HS)
      Ptb.resize(Br / 2 * Bc);  // (Br/2, Bc): P^T pairs along queries
      dSb.resize(Br * Bc / 2);  // (Br, Bc/2): dS pairs along keys
      dStb.resize(Br / 2 * Bc); // (Br/2, Bc): dS^T pairs along queries
    }
    P.resize(Br * Bc);     // (Br, Bc) probabilities
    dP.resize(Br * Bc);    // (Br, Bc) dP, then (float32) dS
    if constexpr (!BF) {   // (bf16 converts from the strided rows directly: copying them first cost 3% of its backward)
      Kc.resize(T * HS);   // (T, HS) this head's keys, contiguous
      Qc.resize(T * HS);   // (T, HS) one query head's queries
      dOc.resize(T * HS);  // (T, HS) its output gradient
    }
    dQc.assign(T * HS, 0.f);  // (T, HS) its query gradient
    dKc.assign(T * HS, 0.f);  // (T, HS) key gradient, summed over the group's query heads
    dVc.assign(T * HS, 0.f);  // (T, HS) value gradient, likewise
    // This head's keys and values as panels, packed by the task that uses them (they stay in its
    // cache): (np, HS, PW) float32, or bf16 (np, HS/2, PW) panels plus the keys as row pairs.
    thread_local std::vector<float> Kp, Vp;
    thread_local std::vector<pair_t> Kbp, Vbp, Kpairs;
    const float* kh0 = k + (b * T * NKV + kh) * HS;
    const float* vh0 = v + (b * T * NKV + kh) * HS;
    const float* kph = nullptr;
    const float* vph = nullptr;
    const pair_t *kbh = nullptr, *vbh = nullptr, *kph2 = nullptr;
    if constexpr (BF) {
      pair_t *kb = scratch(Kbp, np * HS2 * PW), *vb = scratch(Vbp, np * HS2 * PW), *kr = scratch(Kpairs, T2 * HS);
      bf16_panels(kb, kh0, T, ldk, HS);
      bf16_panels(vb, vh0, T, ldk, HS);
      bf16_row_pairs(kr, HS, kh0, ldk, T, HS, HS);
      kbh = kb, vbh = vb, kph2 = kr;
    } else {
      float *kf = scratch(Kp, np * HS * PW), *vf = scratch(Vp, np * HS * PW);
      pack_panels(kf, kh0, T, ldk, HS);
      pack_panels(vf, vh0, T, ldk, HS);
      kph = kf, vph = vf;
    }
    if constexpr (!BF) gather_rows(Kc.data(), kh0, T, ldk, HS);
    for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
      const float* qh0 = q + (b * T * NH + h) * HS;
      const float* doh0 = dout + (b * T * NH + h) * HS;
      const float* D = Dall + (b * NH + h) * T;
      if constexpr (BF) {
        bf16_rows(Qb.data(), HS2, qh0, ldq, T, HS);
        bf16_rows(dOb.data(), HS2, doh0, ldq, T, HS);
        bf16_row_pairs(Qp.data(), HS, qh0, ldq, T, HS, HS);
        bf16_row_pairs(dOp.data(), HS, doh0, ldq, T, HS, HS);
      } else {
        gather_rows(Qc.data(), qh0, T, ldq, HS);
        gather_rows(dOc.data(), doh0, T, ldq, HS);
      }
      std::fill(dQc.begin(), dQc.end(), 0.f);
      const float* L = lse + (b * NH + h) * T;
      for (int64_t k0 = 0; k0 < T; k0 += Bc) {
        const int64_t nk = std::min(Bc, T - k0);
        const float* kt = BF ? nullptr : Kc.data() + k0 * HS;
        float* dkt = dKc.data() + k0 * HS;
        float* dvt = dVc.data() + k0 * HS;
        for (int64_t q0 = (k0 / Br) * Br; q0 < T; q0 += Br) {  // only query tiles that see these keys
          const int64_t nq = std::min(Br, T - q0);
          // Query rows [r0, r1) of the tile against its first kc keys: the five products and the
          // softmax / dS work between them.
          auto rows = [&](int64_t r0, int64_t r1, int64_t kc) {
            const int64_t nr = r1 - r0, npc = (kc + PW - 1) / PW, qa = q0 + r0;  // qa: first query (even: pairs)
            float* Pr = P.data() + r0 * Bc;    // (nr, Bc) probabilities
            float* dPr = dP.data() + r0 * Bc;  // (nr, Bc) dP, then dS (float32; bf16 writes dS only as pairs)
            const float* qr = BF ? nullptr : Qc.data() + qa * HS;
            const float* dor = BF ? nullptr : dOc.data() + qa * HS;
            float* dqr = dQc.data() + qa * HS;
            if constexpr (BF) {
              tile_qk_bf16(Qb.data() + qa * HS2, HS2, nr, kbh + (k0 / PW) * HS2 * PW, npc, HS, scale, Pr, Bc);
            } else {
              tile_qk(qr, HS, nr, kph + (k0 / PW) * HS * PW, npc, HS, scale, Pr, Bc);  // S = scale Q K^T
            }
            if (k0 + kc - 1 > qa) causal_mask(Pr, nr, kc, qa, k0);
            if constexpr (BF) {
              probs_bf16(Pr, L + qa, nr, kc, Ptb.data());  // A(j, ip) = Ptb[ip * Bc + j]
              tile_acc_bf16(Ptb.data(), 1, Bc, kc, (nr + 1) / 2, dOp.data() + qa / 2 * HS, HS, HS, dvt, HS);  // dV += P^T dO
              tile_qk_bf16(dOb.data() + qa * HS2, HS2, nr, vbh + (k0 / PW) * HS2 * PW, npc, HS, 1.f, dPr, Bc);  // dP = dO V^T
            } else {
              for (int64_t i = 0; i < nr; i++) exp_shift_sum_short(Pr + i * Bc, Pr + i * Bc, L[qa + i], kc);
              tile_acc(Pr, 1, Bc, kc, nr, dor, HS, HS, dvt, HS);                        // dV += P^T dO
              tile_qk(dor, HS, nr, vph + (k0 / PW) * HS * PW, npc, HS, 1.f, dPr, Bc);  // dP = dO V^T
            }
            if constexpr (BF) {  // dS, times the score scale both its uses need
              dscores_bf16(Pr, dPr, D + qa, scale, nr, kc, dSb.data(), dStb.data());
              tile_acc_bf16(dSb.data(), Bc / 2, 1, nr, (kc + 1) / 2, kph2 + k0 / 2 * HS, HS, HS, dqr, HS);  // dQ += scale dS K
              tile_acc_bf16(dStb.data(), 1, Bc, kc, (nr + 1) / 2, Qp.data() + qa / 2 * HS, HS, HS, dkt, HS);  // dK += scale dS^T Q
            } else {
              for (int64_t i = 0; i < nr; i++) {  // dS, times the score scale both its uses need
                const float Di = D[qa + i];
                float* ds = dPr + i * Bc;
                const float* pi = Pr + i * Bc;
                for (int64_t j = 0; j < kc; j++) ds[j] = scale * pi[j] * (ds[j] - Di);
              }
              tile_acc(dPr, Bc, 1, nr, kc, kt, HS, HS, dqr, HS);  // dQ += scale dS K
              tile_acc(dPr, 1, Bc, kc, nr, qr, HS, HS, dkt, HS);  // dK += scale dS^T Q
            }
          };
          if (k0 + nk - 1 <= q0) {
            rows(0, nq, nk);  // every query sees every key of the tile
          } else {
            // The diagonal tile, in 16-query chunks against only the keys each chunk sees (as the forward)
            for (int64_t r0 = 0; r0 < nq; r0 += PW) {
              const int64_t r1 = std::min(nq, r0 + PW), kc = std::min(nk, q0 + r1 - k0);
              if (kc > 0) rows(r0, r1, kc);
            }
          }
        }
      }
      scatter_rows(dq + (b * T * NH + h) * HS, dQc.data(), T, ldq, HS, accumulate);
    }
    scatter_rows(dk + (b * T * NKV + kh) * HS, dKc.data(), T, ldk, HS, accumulate);
    scatter_rows(dv + (b * T * NKV + kh) * HS, dVc.data(), T, ldk, HS, accumulate);
  });
}

// bf16 runs the bf16 tiles on the avx512bf16 build when HS is a multiple of 16 and the queries fill a
// panel (training, prefill); otherwise (other builds, decoding) attention stays float32.
bool bf16_tiles(Precision prec, int64_t HS, int64_t Tq) {
#if defined(__AVX512BF16__)
  return prec == Precision::bf16 && HS % 16 == 0 && Tq >= PW;
#else
  (void)prec, (void)HS, (void)Tq;
  return false;
#endif
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int64_t B, int64_t Tq, int64_t Tk, int64_t NH, int64_t NKV, int64_t HS, Precision prec) {
#if defined(__AVX512BF16__)
  if (bf16_tiles(prec, HS, Tq)) return attention_forward_impl<true>(out, lse, q, k, v, B, Tq, Tk, NH, NKV, HS);
#endif
  (void)bf16_tiles;
  attention_forward_impl<false>(out, lse, q, k, v, B, Tq, Tk, NH, NKV, HS);
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                        const float* q, const float* k, const float* v, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS,
                        Precision prec, bool accumulate) {
#if defined(__AVX512BF16__)
  if (bf16_tiles(prec, HS, T)) {
    return attention_backward_impl<true>(dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, NKV, HS, accumulate);
  }
#endif
  attention_backward_impl<false>(dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, NKV, HS, accumulate);
}

}  // namespace lc
