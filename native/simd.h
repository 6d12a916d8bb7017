// Small vector helpers shared by the ops: a vectorised exp (scalar expf would cost as much as the
// matmuls around it in SwiGLU and softmax), dot products and axpy that the compiler vectorises.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#if (defined(__AVX2__) && defined(__FMA__)) || defined(__AVX512F__)
#include <immintrin.h>
#endif

// Register-tiled kernels keep their accumulator arrays in registers only when every loop over the
// tile is fully unrolled (constant indices) and the kernel is inlined into its caller.
#define LC_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define LC_UNROLL LC_PRAGMA(unroll)
#else
#define LC_UNROLL LC_PRAGMA(GCC unroll 32)
#endif
#define LC_INLINE inline __attribute__((always_inline))
#define LC_INLINE_LAMBDA __attribute__((always_inline))  // after a lambda's parameter list

namespace lc {

#if defined(__AVX2__) && defined(__FMA__)
// exp(x) for 8 floats: range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial for e^r
// (Cephes coefficients), then scale by 2^n through the exponent bits. Max relative error ~2e-7
// over [-87, 88]; inputs below -87.3 give 0, above 88.7 give +inf, NaN stays NaN.
static inline __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.7228391f), lo = _mm256_set1_ps(-87.3365447f);
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
  const __m256 c1 = _mm256_set1_ps(0.693359375f), c2 = _mm256_set1_ps(-2.12194440e-4f);
  __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  __m256 overflow = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
  __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, c1, xc);
  r = _mm256_fnmadd_ps(n, c2, r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n: n in [-126, 128]; split in two factors so n = 128 does not overflow the exponent field
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i half = _mm256_srai_epi32(ni, 1);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  y = _mm256_andnot_ps(underflow, y);
  y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), overflow);
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));  // NaN in, NaN out
}
#endif

#if defined(__AVX512F__)
// exp8's method for 16 floats: the same reduction and polynomial; 2^n applied by vscalefps, which
// needs no exponent-field arithmetic. exp16_scaled takes x already clamped to where the reduction
// is exact; exp16 adds exp8's special values (same error bound: inputs below -87.3 give 0, above
// 88.7 give +inf, NaN stays NaN).
static inline __m512 exp16_scaled(__m512 xc) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

static inline __m512 exp16(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.7228391f), lo = _mm512_set1_ps(-87.3365447f);
  const __mmask16 underflow = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  const __mmask16 overflow = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  __m512 y = exp16_scaled(_mm512_min_ps(_mm512_max_ps(x, lo), hi));
  y = _mm512_maskz_mov_ps(static_cast<__mmask16>(~underflow), y);
  y = _mm512_mask_mov_ps(y, overflow, _mm512_set1_ps(INFINITY));
  return _mm512_mask_mov_ps(y, nan, x);  // NaN in, NaN out
}

// exp(x) for x <= 0, -inf or NaN: a softmax's exp(s - max). No masks: x is clamped below at -110
// (vmaxps returns its second operand, x, when x is NaN, so NaN flows through to a NaN result), and
// vscalefps takes p * 2^n through the denormals to exactly 0 (2^-159 at the clamp). Equal to exp16
// down to -87.3; below it, denormals where exp16 gives 0. x > 0 is not checked for overflow.
static inline __m512 exp16_nonpos(__m512 x) { return exp16_scaled(_mm512_max_ps(_mm512_set1_ps(-110.f), x)); }

// exp16_nonpos to bfloat16's needs: for probabilities that are rounded to bfloat16 (relative step
// 2^-8) as soon as they are made. One-constant reduction (r = x - n ln2, |n| <= 160: adds < 4e-7)
// and the degree-4 Taylor polynomial of e^r on |r| <= ln2 / 2 (|r|^5 / 120 < 4.3e-5): relative
// error < 6e-5 down to -87 (measured against std::exp in float64 at 1e-4 steps: 5.6e-5 worst), 1/30
// of a bfloat16 rounding, for 9 instructions instead of 14. Same clamp, NaN and -inf behaviour as
// exp16_nonpos.
static inline __m512 exp16_nonpos_bf16(__m512 x) {
  const __m512 xc = _mm512_max_ps(_mm512_set1_ps(-110.f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693147180559945f), xc);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.f / 24), r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}
#endif

// y[i] = exp(x[i] - shift) for i < n, for x[i] - shift <= 0 (a softmax: shift is the row's max,
// or its log-sum-exp); y may alias x. Returns the sum of the results, as Sum:
// double sums the vector lanes in float64 (long rows: the LM head's vocabulary); float takes the
// lanes' float32 tree sum (short rows, such as attention's 64-key tiles, where a float64 reduction
// of the lanes cost as much as the exps).
template <typename Sum>
static inline Sum exp_shift_sum_as(float* y, const float* x, float shift, int64_t n) {
  int64_t i = 0;
  Sum total = 0;
#if defined(__AVX512F__)
  const __m512 s = _mm512_set1_ps(shift);
  __m512 acc = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp16_nonpos(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
    _mm512_storeu_ps(y + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (i < n) {  // the tail in one masked vector
    const __mmask16 mk = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 e = exp16_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + i), s));
    _mm512_mask_storeu_ps(y + i, mk, e);
    acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(mk, e));
    i = n;
  }
  if constexpr (std::is_same_v<Sum, float>) {
    total = _mm512_reduce_add_ps(acc);
  } else {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc);
    for (float l : lanes) total += l;
  }
#elif defined(__AVX2__) && defined(__FMA__)
  const __m256 s = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(y + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  if constexpr (std::is_same_v<Sum, float>) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    total = _mm_cvtss_f32(h);
  } else {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc);
    for (float l : lanes) total += l;
  }
#endif
  for (; i < n; i++) {
    const float e = std::exp(x[i] - shift);
    y[i] = e;
    total += e;
  }
  return total;
}

static inline double exp_shift_sum(float* y, const float* x, float shift, int64_t n) { return exp_shift_sum_as<double>(y, x, shift, n); }
static inline float exp_shift_sum_short(float* y, const float* x, float shift, int64_t n) { return exp_shift_sum_as<float>(y, x, shift, n); }

#if defined(__AVX512F__)
// In place: r[c] = column c of the 16 x 16 matrix of 32-bit elements whose rows were r[0..16).
static inline void transpose16x16_epi32(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; i++) {  // 32-bit interleave within 128-bit lanes
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {  // 64-bit: u[4i + j] lane L = column 4L + j of rows 4i..4i+3
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int j = 0; j < 4; j++) {  // gather lane L of the four row groups: column 4L + j
    const __m512i v = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), w = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xDD);
    const __m512i x = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88), y = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_shuffle_i32x4(v, x, 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(v, x, 0xDD);
    r[4 + j] = _mm512_shuffle_i32x4(w, y, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(w, y, 0xDD);
  }
}

#endif

#if defined(__AVX512BF16__)
// (bf16(lo[c]) | bf16(hi[c]) << 16) for c < 16: two rows' elements paired, round to nearest even.
// cvtne2ps gives lo's 16 values in the low 256 bits and hi's in the high; one permute interleaves them.
static inline __m512i bf16_interleave(__m512 lo, __m512 hi) {
  const __m512i kPairInterleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                                   21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(kPairInterleave, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

// bfloat16 pairs across consecutive rows, the operand layout of vdpbf16ps for a product that
// contracts over rows: dst[xp * ldd + c] = (bf16(src[2xp][c]) | bf16(src[2xp + 1][c]) << 16) for
// 2xp < n and c < m (src rows ld apart; an odd last row pairs with 0), and 0 for m <= c < width.
// Round to nearest even (vcvtneps2bf16). Used by the GEMM's packing and attention's bf16 tiles.
static inline void bf16_row_pairs(uint32_t* dst, int64_t ldd, const float* src, int64_t ld, int64_t n, int64_t m,
                                  int64_t width) {
  for (int64_t xp = 0; xp < (n + 1) / 2; xp++) {
    const float* lo = src + 2 * xp * ld;
    const float* hi = lo + ld;
    const bool has_hi = 2 * xp + 1 < n;
    for (int64_t c = 0; c < width; c += 16) {
      const int64_t valid = std::max<int64_t>(0, std::min<int64_t>(16, m - c));
      const __mmask16 mk = valid >= 16 ? __mmask16(0xffff) : __mmask16((1u << valid) - 1);
      const __m512 l = _mm512_maskz_loadu_ps(mk, lo + c);
      const __m512 h = has_hi ? _mm512_maskz_loadu_ps(mk, hi + c) : _mm512_setzero_ps();
      const __m512i w = bf16_interleave(l, h);
      const __mmask16 out = width - c >= 16 ? __mmask16(0xffff) : __mmask16((1u << (width - c)) - 1);
      _mm512_mask_storeu_epi32(dst + xp * ldd + c, out, w);
    }
  }
}

// Packs k pairs from a source whose rows are the panel's rows (row i at src + i * ld, k along it,
// w valid rows): dst[kp * W + i] = pair(src[i][2kp], src[i][2kp + 1]), zero past w and past kc.
// The pair is adjacent in memory, so each row converts 32 floats into 16 pairs at once and 16 x 16
// transposes put them in panel order (op(A) of NN / NT products and op(B) of NT ones are stored
// this way, and attention's bf16 key panels).
static inline void pack_pairs_from_cols(const float* src, int64_t ld, int64_t kc, int W, int w, uint32_t* dst) {
  for (int i0 = 0; i0 < W; i0 += 16) {
    const int lanes = std::min(16, W - i0), valid = std::max(0, std::min(16, w - i0));
    const __mmask16 store = lanes >= 16 ? __mmask16(0xffff) : __mmask16((1u << lanes) - 1);
    for (int64_t k0 = 0; k0 < kc; k0 += 32) {
      const int64_t rem = std::min<int64_t>(32, kc - k0);
      const __mmask16 lo = rem >= 16 ? __mmask16(0xffff) : __mmask16((1u << rem) - 1);
      const __mmask16 hi = rem > 16 ? __mmask16((1u << (rem - 16)) - 1) : __mmask16(0);
      __m512i r[16];
      for (int i = 0; i < 16; i++) {
        if (i < valid) {
          const float* s = src + (i0 + i) * ld + k0;
          r[i] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, s + 16), _mm512_maskz_loadu_ps(lo, s));
        } else {
          r[i] = _mm512_setzero_si512();
        }
      }
      transpose16x16_epi32(r);
      for (int64_t c = 0; c < (rem + 1) / 2; c++) _mm512_mask_storeu_epi32(dst + (k0 / 2 + c) * W + i0, store, r[c]);
    }
  }
}
#endif

// dst[0, n) = src[0, n), inline: for the short rows that attention gathers a head's rows with
// (HS = 32: 128 bytes), std::copy's call into memmove cost more than the copying (9% of small's
// attention).
static inline void copy_floats(float* dst, const float* src, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
#elif defined(__AVX2__)
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
#endif
  for (; i < n; i++) dst[i] = src[i];
}

static inline float dot(const float* a, const float* b, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
  float s = 0.f;
  for (int j = 0; j < 16; j++) s += acc[j];
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

// The largest element (NaNs skipped; -inf for n == 0 or all NaN). vmaxps(a, m) returns m when a
// is NaN, as the scalar loop does, and max is exact, so every path gives the same value (up to
// the sign of a zero maximum).
static inline float max_of(const float* a, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  if (n >= 16) {
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
    for (; i + 32 <= n; i += 32) {
      m0 = _mm512_max_ps(_mm512_loadu_ps(a + i), m0);
      m1 = _mm512_max_ps(_mm512_loadu_ps(a + i + 16), m1);
    }
    for (; i + 16 <= n; i += 16) m0 = _mm512_max_ps(_mm512_loadu_ps(a + i), m0);
    float r = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
    for (; i < n; i++) r = a[i] > r ? a[i] : r;
    return r;
  }
#elif defined(__AVX2__) && defined(__FMA__)
  if (n >= 8) {
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
    for (; i + 16 <= n; i += 16) {
      m0 = _mm256_max_ps(_mm256_loadu_ps(a + i), m0);
      m1 = _mm256_max_ps(_mm256_loadu_ps(a + i + 8), m1);
    }
    for (; i + 8 <= n; i += 8) m0 = _mm256_max_ps(_mm256_loadu_ps(a + i), m0);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, _mm256_max_ps(m0, m1));
    float r = -INFINITY;
    for (float l : lanes) r = l > r ? l : r;
    for (; i < n; i++) r = a[i] > r ? a[i] : r;
    return r;
  }
#endif
  float m[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) m[j] = a[i + j] > m[j] ? a[i + j] : m[j];
  float r = -INFINITY;
  for (int j = 0; j < 8; j++) r = m[j] > r ? m[j] : r;
  for (; i < n; i++) r = a[i] > r ? a[i] : r;
  return r;
}

}  // namespace lc
