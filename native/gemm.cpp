// Single-precision GEMM in the BLIS / GotoBLAS style.
//
//   for jc in N by NC:                         B block (KC, NC), packed once, shared by all threads
//     for pc in K by KC:                       one "step"
//       pack B[pc:pc+kc, jc:jc+nc] into NR-column panels    (panels claimed from a counter)
//       for each unit (MC rows x a run of NR panels):        (each thread's home units, then stealing)
//         pack A[ic:ic+mc, pc:pc+kc] into MR-row panels      (thread-local, L2-sized; reused)
//         for jr in the unit's NR panels:                    (B micro-panel stays in L1)
//           for ir in MR panels:  micro-kernel  C[ir, jr] (MR, NR) = alpha * A @ B + beta' * C
//
// Packing absorbs the transposes, so all four (transA, transB) combinations run the same
// micro-kernel. Partial panels are zero-padded; partial C tiles go through a small stack tile.
// The micro-kernel is one loop nest over a vector type (AVX-512: 16 lanes, AVX2: 8, scalar: 1);
// only the lane width and MR / NR / blocking differ between builds. M == 1 or N == 1 (decoding)
// take a matrix-vector path instead (no packing), tiny products a direct loop.
//
// Threads: one pool job per call, no barriers in a product (see StepState). The threads form a
// tm x tn grid over rows and NR panels; each owns a home share of every step, split into units,
// and steals other homes' units when done, so a thread that wakes late or loses its core to
// another process costs little. Products with a long K (the weight gradients) are split in two
// along K and the halves run side by side (sgemm_ksplit). Every C element is summed in the same order whatever the
// thread count: threaded and single-threaded results are bitwise equal.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <thread>

#include "pool.h"
#include "simd.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__)) || defined(__SSE2__)
#include <immintrin.h>
#endif

namespace lc {
namespace {

// ---------------------------------------------------------------------------------------------
// Vector layer: the only part that differs between instruction sets.
#if defined(__AVX512F__)
using vf = __m512;
constexpr int VW = 16;                 // lanes
constexpr int MR = 12, NR = 32;        // 24 zmm accumulators + 2 B vectors + 1 broadcast
constexpr int KC_DEF = 512, MC_DEF = 144, NC_DEF = 4096;  // Zen 5, 2026-12-02: KC 512 beat 384 by 3-9% (2048^3, TN dW, LM head)
#if defined(__AVX512BF16__)
constexpr const char* KERNEL_NAME = "avx512bf16";
#else
constexpr const char* KERNEL_NAME = "avx512";
#endif
inline vf vzero() { return _mm512_setzero_ps(); }
inline vf vset1(float x) { return _mm512_set1_ps(x); }
inline vf vload(const float* p) { return _mm512_load_ps(p); }
inline vf vloadu(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, vf v) { _mm512_store_ps(p, v); }
inline void vstoreu(float* p, vf v) { _mm512_storeu_ps(p, v); }
inline vf vbcast(const float* p) { return _mm512_set1_ps(*p); }
inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
inline float vsum(vf a) { return _mm512_reduce_add_ps(a); }
#elif defined(__AVX2__) && defined(__FMA__)
using vf = __m256;
constexpr int VW = 8;
constexpr int MR = 6, NR = 16;         // 12 ymm accumulators + 2 B vectors + 1 broadcast
constexpr int KC_DEF = 512, MC_DEF = 48, NC_DEF = 2048;
constexpr const char* KERNEL_NAME = "avx2";
inline vf vzero() { return _mm256_setzero_ps(); }
inline vf vset1(float x) { return _mm256_set1_ps(x); }
inline vf vload(const float* p) { return _mm256_load_ps(p); }
inline vf vloadu(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, vf v) { _mm256_store_ps(p, v); }
inline void vstoreu(float* p, vf v) { _mm256_storeu_ps(p, v); }
inline vf vbcast(const float* p) { return _mm256_broadcast_ss(p); }
inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
inline float vsum(vf a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#else
using vf = float;
constexpr int VW = 1;
constexpr int MR = 4, NR = 4;
constexpr int KC_DEF = 256, MC_DEF = 64, NC_DEF = 1024;
constexpr const char* KERNEL_NAME = "scalar";
inline vf vzero() { return 0.f; }
inline vf vset1(float x) { return x; }
inline vf vload(const float* p) { return *p; }
inline vf vloadu(const float* p) { return *p; }
inline void vstore(float* p, vf v) { *p = v; }
inline void vstoreu(float* p, vf v) { *p = v; }
inline vf vbcast(const float* p) { return *p; }
inline vf vfma(vf a, vf b, vf c) { return a * b + c; }
inline vf vmul(vf a, vf b) { return a * b; }
inline vf vadd(vf a, vf b) { return a + b; }
inline float vsum(vf a) { return a; }
#endif

constexpr int NV = NR / VW;            // vectors per micro-tile row
static_assert(NR % VW == 0, "NR must be a multiple of the vector width");
static_assert(MC_DEF % MR == 0 && NC_DEF % NR == 0, "MC and NC must be multiples of MR and NR");
constexpr size_t ALIGN = 64;

// The micro-kernel's accumulators must live in registers: that needs every loop over MR / NV fully
// unrolled (constant indices) and the kernel inlined into its caller (LC_UNROLL, LC_INLINE: simd.h).

// ---------------------------------------------------------------------------------------------
// bfloat16 operands (Precision::bf16). With AVX512-BF16 each panel is packed straight into k pairs,
// the operand layout of vdpbf16ps: the 32-bit slot (kp, c) holds op[2kp][c] in its low half and
// op[2kp+1][c] in its high half (an odd last k pairs with 0): bf16_row_pairs (simd.h) where the
// source's rows are k (TN's A, NN's B), pack_pairs_from_cols where k runs along them (NN / NT's A,
// NT's B). Elsewhere the float32 panels are packed as for fp32 and rounded in place
// (round_panel_bf16), then run through the float32 micro-kernel. Rounding is to nearest even; NaN
// stays NaN; the BF16 instructions flush denormal inputs to zero.
#if defined(__AVX512BF16__)
constexpr bool BF16_NATIVE = true;

#else
constexpr bool BF16_NATIVE = false;
#endif

// Rounds the n floats of a packed panel to bfloat16 in place (builds without AVX512-BF16).
void round_panel_bf16(float* panel, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint32_t u;
    std::memcpy(&u, panel + i, 4);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    const uint32_t quiet_nan = (u | 0x00400000u) & 0xffff0000u;
    const uint32_t r = (u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded;
    std::memcpy(panel + i, &r, 4);
  }
}

// ---------------------------------------------------------------------------------------------
// Blocking. The AVX2 defaults were measured on the target (AMD EPYC Zen 3: L1d 32 KiB, L2 512 KiB
// per core, L3 32 MiB): the B micro-panel KC*NR*4 = 32 KiB is L1-sized, the packed A block
// MC*KC*4 = 96 KiB sits in L2, the shared B block KC*NC*4 = 4 MiB in L3. KC 384..768 and
// MC 24..144 were all within a few percent; KC = 512 keeps K = 512 (C = 512 models) to a single
// pass over C, and NC = 2048 beat 4096 on the LM-head shape (N = 8192).
// LONGCTX_GEMM_{KC,MC,NC} override them (tuning only; rounded down to multiples of MR / NR).
struct Blocking {
  int64_t kc, mc, nc;
};

int64_t env_int(const char* name, int64_t def, int64_t multiple) {
  if (const char* s = std::getenv(name)) {
    long long v = std::atoll(s);
    if (v >= multiple) return (v / multiple) * multiple;
  }
  return def;
}

const Blocking& blocking() {
  static const Blocking b{env_int("LONGCTX_GEMM_KC", KC_DEF, 1), env_int("LONGCTX_GEMM_MC", MC_DEF, MR),
                          env_int("LONGCTX_GEMM_NC", NC_DEF, NR)};
  return b;
}

// Splits n into ceil(n / max) near-equal blocks, each rounded up to `multiple`.
int64_t balanced_block(int64_t n, int64_t max, int64_t multiple) {
  int64_t nblocks = (n + max - 1) / max;
  int64_t b = (n + nblocks - 1) / nblocks;
  b = (b + multiple - 1) / multiple * multiple;
  return std::min(b, max);
}

// ---------------------------------------------------------------------------------------------
// Buffers: 64-byte aligned, grown on demand, one set per OS thread (thread_local), so concurrent
// single-threaded calls from inside pool jobs never share a buffer.
struct AlignedBuf {
  float* p = nullptr;
  size_t cap = 0;  // floats
  ~AlignedBuf() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      size_t bytes = (n * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN;
      p = static_cast<float*>(std::aligned_alloc(ALIGN, bytes));
      if (!p) {
        cap = 0;
        throw std::bad_alloc();
      }
      cap = n;
    }
    return p;
  }
};

thread_local AlignedBuf tl_apack;     // this thread's packed A block (MC, KC)
thread_local AlignedBuf tl_bpack[2];  // packed B blocks (KC, NC), owned by the calling thread

#if defined(__AVX2__)
// 8x8 transpose: d[c * dd + r] = rows[r][c] for r, c < 8.
inline void transpose8x8(const float* const* rows, float* d, int64_t dd) {
  __m256 r0 = _mm256_loadu_ps(rows[0]), r1 = _mm256_loadu_ps(rows[1]);
  __m256 r2 = _mm256_loadu_ps(rows[2]), r3 = _mm256_loadu_ps(rows[3]);
  __m256 r4 = _mm256_loadu_ps(rows[4]), r5 = _mm256_loadu_ps(rows[5]);
  __m256 r6 = _mm256_loadu_ps(rows[6]), r7 = _mm256_loadu_ps(rows[7]);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(d + 0 * dd, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(d + 1 * dd, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(d + 2 * dd, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(d + 3 * dd, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(d + 4 * dd, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(d + 5 * dd, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(d + 6 * dd, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(d + 7 * dd, _mm256_permute2f128_ps(u3, u7, 0x31));
}

// Same, rows at s + r * ld.
inline void transpose8x8(const float* s, int64_t ld, float* d, int64_t dd) {
  const float* rows[8] = {s, s + ld, s + 2 * ld, s + 3 * ld, s + 4 * ld, s + 5 * ld, s + 6 * ld, s + 7 * ld};
  transpose8x8(rows, d, dd);
}
#endif

// ---------------------------------------------------------------------------------------------
// Packing.
// The packing order of a transposed A block (op(A)[i][k] = A[k][i]: TN's A, the output gradient
// in the weight gradients dW = dY^T X) of mc rows and kc k's: pack(k0, kn, ir, mr) is called for
// rows [k0, k0 + kn) of panel ir (mr of its MR rows valid), chunk by chunk, each chunk across
// every panel. Chunks are even, so bf16's k pairs stay whole. A panel is MR floats wide, so the
// cache lines of a row are shared by neighbouring panels. Packed panel by panel, all kc rows of one
// panel are read before the next panel comes back for the rest of those lines, and when the row
// stride is a multiple of 1 KB the rows fall into so few cache sets that the lines are gone by
// then. Chunks of sixteen rows keep them. Strides that spread over the sets take one chunk of all
// kc rows (the panel-by-panel order), which was 1-2% faster there. Zen 5, 2 threads, bench gemm
// (BENCHMARKS.md): bf16 1024 x 256 x 4096 (A row stride 4 KB) 560 -> 623 GFLOPS, 2048 x 512 x
// 4096 561 -> 666; fp32 0-4%; a training step of a hidden-1024 model 1-1.5% faster, small and
// medium unchanged.
template <class Pack>
inline void for_transposed_chunks(int64_t lda, int64_t mc, int64_t kc, Pack&& pack) {
  const int64_t kch = lda % 256 == 0 ? 16 : kc;
  for (int64_t k0 = 0; k0 < kc; k0 += kch) {
    const int64_t kn = std::min(kch, kc - k0);
    for (int64_t ir = 0; ir < mc; ir += MR) pack(k0, kn, ir, static_cast<int>(std::min<int64_t>(MR, mc - ir)));
  }
}

// A block rows [i0, i0+mc), cols [p0, p0+kc) of op(A) -> panels of MR rows: Ap[panel][k][r].
void pack_a(bool transA, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* Ap) {
  if (transA) {
    // op(A)[i][k] = A[k][i]: MR contiguous floats per k. (A whole-row copy per k instead, each row
    // dealt out to every panel, measured 5-10% slower on the weight-gradient shapes.)
    for_transposed_chunks(lda, mc, kc, [&](int64_t k0, int64_t kn, int64_t ir, int mr) {
      const float* src = A + (p0 + k0) * lda + (i0 + ir);
      float* dst = Ap + ir * kc + k0 * MR;
      if (mr == MR) {
        for (int64_t k = 0; k < kn; k++) std::memcpy(dst + k * MR, src + k * lda, sizeof(float) * MR);
      } else {
        for (int64_t k = 0; k < kn; k++) {
          std::memcpy(dst + k * MR, src + k * lda, sizeof(float) * mr);
          std::memset(dst + k * MR + mr, 0, sizeof(float) * (MR - mr));
        }
      }
    });
    return;
  }
  // op(A)[i][k] = A[i][k]: MR row streams, interleaved.
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int64_t mr = std::min<int64_t>(MR, mc - ir);
    float* dst = Ap + ir * kc;
    const float* src = A + (i0 + ir) * lda + p0;
    if (mr == MR) {
      const float* rows[MR];
      for (int r = 0; r < MR; r++) rows[r] = src + r * lda;
      int64_t k = 0;
#if defined(__AVX2__)
      // Eight k at a time: 8x8 transposes of up to 8 rows (missing rows repeat the last one and
      // are not copied out), then MR-float runs into the panel.
      alignas(32) float t[64];
      for (; k + 8 <= kc; k += 8) {
        for (int r0 = 0; r0 < MR; r0 += 8) {
          const float* rr[8];
          for (int r = 0; r < 8; r++) rr[r] = rows[std::min(r0 + r, MR - 1)] + k;
          transpose8x8(rr, t, 8);
          const int nrow = std::min(8, MR - r0);
          for (int kk = 0; kk < 8; kk++) std::memcpy(dst + (k + kk) * MR + r0, t + kk * 8, sizeof(float) * nrow);
        }
      }
#endif
      for (; k < kc; k++) {
        float* d = dst + k * MR;
        for (int r = 0; r < MR; r++) d[r] = rows[r][k];
      }
    } else {
      for (int64_t k = 0; k < kc; k++) {
        float* d = dst + k * MR;
        int r = 0;
        for (; r < mr; r++) d[r] = src[r * lda + k];
        for (; r < MR; r++) d[r] = 0.f;
      }
    }
  }
}

// One NR-column panel of op(B): rows [p0, p0+kc), cols [j0, j0+nr) -> Bp[k][c], zero-padded to NR.
void pack_b_panel(bool transB, const float* B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nr,
                  float* Bp) {
  if (!transB) {
    // op(B)[k][j] = B[k][j]: NR contiguous floats per k.
    const float* src = B + p0 * ldb + j0;
    if (nr == NR) {
      for (int64_t k = 0; k < kc; k++) {
        const float* s = src + k * ldb;
        float* d = Bp + k * NR;
        for (int v = 0; v < NV; v++) vstore(d + v * VW, vloadu(s + v * VW));
      }
    } else {
      for (int64_t k = 0; k < kc; k++) {
        const float* s = src + k * ldb;
        float* d = Bp + k * NR;
        int64_t c = 0;
        for (; c < nr; c++) d[c] = s[c];
        for (; c < NR; c++) d[c] = 0.f;
      }
    }
  } else {
    // op(B)[k][j] = B[j][k]: NR row streams of B, transposed.
    const float* src = B + j0 * ldb + p0;
    int64_t k = 0;
#if defined(__AVX2__)
    if (nr == NR && NR % 8 == 0) {
      for (; k + 8 <= kc; k += 8) {
        for (int c = 0; c < NR; c += 8) transpose8x8(src + c * ldb + k, ldb, Bp + k * NR + c, NR);
      }
    }
#endif
    for (; k < kc; k++) {
      float* d = Bp + k * NR;
      int64_t c = 0;
      for (; c < nr; c++) d[c] = src[c * ldb + k];
      for (; c < NR; c++) d[c] = 0.f;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// C (mr, nr) = alpha * acc + beta * C for mr <= MR, nr <= NR; beta == 0 never reads C.
LC_INLINE void store_tile(vf (&acc)[MR][NV], float* C, int64_t ldc, int mr, int nr, float alpha, float beta) {
  const vf va = vset1(alpha);
  if (mr == MR && nr == NR) {
    if (beta == 0.f) {
      LC_UNROLL for (int i = 0; i < MR; i++) {
        LC_UNROLL for (int v = 0; v < NV; v++) vstoreu(C + i * ldc + v * VW, vmul(va, acc[i][v]));
      }
    } else if (beta == 1.f) {
      LC_UNROLL for (int i = 0; i < MR; i++) {
        LC_UNROLL for (int v = 0; v < NV; v++) {
          float* c = C + i * ldc + v * VW;
          vstoreu(c, vfma(va, acc[i][v], vloadu(c)));
        }
      }
    } else {
      const vf vb = vset1(beta);
      LC_UNROLL for (int i = 0; i < MR; i++) {
        LC_UNROLL for (int v = 0; v < NV; v++) {
          float* c = C + i * ldc + v * VW;
          vstoreu(c, vfma(va, acc[i][v], vmul(vb, vloadu(c))));
        }
      }
    }
    return;
  }
  alignas(ALIGN) float tile[MR * NR];
  LC_UNROLL for (int i = 0; i < MR; i++) {
    LC_UNROLL for (int v = 0; v < NV; v++) vstore(tile + i * NR + v * VW, acc[i][v]);
  }
  for (int i = 0; i < mr; i++) {
    float* c = C + i * ldc;
    const float* t = tile + i * NR;
    if (beta == 0.f) {
      for (int j = 0; j < nr; j++) c[j] = alpha * t[j];
    } else {
      for (int j = 0; j < nr; j++) c[j] = alpha * t[j] + beta * c[j];
    }
  }
}

// Micro-kernel: C (mr, nr) = alpha * Ap (MR, kc) @ Bp (kc, NR) + beta * C, for mr <= MR, nr <= NR.
// beta == 0 never reads C.
LC_INLINE void micro_kernel(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* C,
                            int64_t ldc, int mr, int nr, float alpha, float beta) {
  vf acc[MR][NV];
  LC_UNROLL for (int i = 0; i < MR; i++) {
    LC_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = vzero();
  }
  for (int i = 0; i < mr; i++) {  // C is read (beta != 0) or written after the loop: start fetching it
    __builtin_prefetch(C + i * ldc, 1);
    __builtin_prefetch(C + i * ldc + nr - 1, 1);
  }

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; k++) {
    vf b[NV];
    LC_UNROLL for (int v = 0; v < NV; v++) b[v] = vload(Bp + v * VW);
    LC_UNROLL for (int i = 0; i < MR; i++) {
      const vf a = vbcast(Ap + i);
      LC_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = vfma(a, b[v], acc[i][v]);
    }
    Ap += MR;
    Bp += NR;
  }

  store_tile(acc, C, ldc, mr, nr, alpha, beta);
}

#if defined(__AVX512BF16__)
// The same tile from bf16 pair panels (packed as above): one vdpbf16ps per (row, vector) and k pair
// does the work of two FMAs.
LC_INLINE void micro_kernel_bf16(int64_t kc, const float* Apf, const float* Bpf, float* C, int64_t ldc, int mr, int nr,
                                 float alpha, float beta) {
  const int32_t* __restrict Ap = reinterpret_cast<const int32_t*>(Apf);
  const int32_t* __restrict Bp = reinterpret_cast<const int32_t*>(Bpf);
  vf acc[MR][NV];
  LC_UNROLL for (int i = 0; i < MR; i++) {
    LC_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = vzero();
  }
  for (int i = 0; i < mr; i++) {
    __builtin_prefetch(C + i * ldc, 1);
    __builtin_prefetch(C + i * ldc + nr - 1, 1);
  }
#pragma GCC unroll 4
  for (int64_t kp = 0; kp < (kc + 1) / 2; kp++) {
    __m512bh b[NV];
    LC_UNROLL for (int v = 0; v < NV; v++) b[v] = (__m512bh)_mm512_load_si512(Bp + v * VW);
    LC_UNROLL for (int i = 0; i < MR; i++) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(Ap[i]);
      LC_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], a, b[v]);
    }
    Ap += MR;
    Bp += NR;
  }
  store_tile(acc, C, ldc, mr, nr, alpha, beta);
}
#endif

// ---------------------------------------------------------------------------------------------
// Matrix-vector products (M == 1 or N == 1: decoding, a single row or column). Packing would cost
// as much as the product, so these stream the matrix once, split over threads by output element:
//   y[j * incy] = alpha * sum_k x[k] * W(k, j) + beta * y[j * incy],   j in [j0, j1)
// with W(k, j) = W[j * ldw + k] ("dot" form: rows of W are contiguous in k) or W[k * ldw + j]
// ("axpy" form: rows contiguous in j). x is contiguous.
inline void store_y(float* y, float acc, float alpha, float beta) {
  *y = beta == 0.f ? alpha * acc : alpha * acc + beta * *y;
}

void gemv_dot(int64_t j0, int64_t j1, int64_t K, float alpha, const float* x, const float* W, int64_t ldw, float beta,
              float* y, int64_t incy) {
  int64_t j = j0;
  for (; j + 4 <= j1; j += 4) {
    const float* w0 = W + j * ldw;
    const float* w1 = w0 + ldw;
    const float* w2 = w1 + ldw;
    const float* w3 = w2 + ldw;
    vf a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
    int64_t k = 0;
    for (; k + VW <= K; k += VW) {
      const vf xv = vloadu(x + k);
      a0 = vfma(xv, vloadu(w0 + k), a0);
      a1 = vfma(xv, vloadu(w1 + k), a1);
      a2 = vfma(xv, vloadu(w2 + k), a2);
      a3 = vfma(xv, vloadu(w3 + k), a3);
    }
    float s0 = vsum(a0), s1 = vsum(a1), s2 = vsum(a2), s3 = vsum(a3);
    for (; k < K; k++) {
      s0 += x[k] * w0[k];
      s1 += x[k] * w1[k];
      s2 += x[k] * w2[k];
      s3 += x[k] * w3[k];
    }
    store_y(y + (j + 0) * incy, s0, alpha, beta);
    store_y(y + (j + 1) * incy, s1, alpha, beta);
    store_y(y + (j + 2) * incy, s2, alpha, beta);
    store_y(y + (j + 3) * incy, s3, alpha, beta);
  }
  for (; j < j1; j++) {
    const float* w = W + j * ldw;
    vf a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();  // four chains hide the FMA latency
    int64_t k = 0;
    for (; k + 4 * VW <= K; k += 4 * VW) {
      a0 = vfma(vloadu(x + k), vloadu(w + k), a0);
      a1 = vfma(vloadu(x + k + VW), vloadu(w + k + VW), a1);
      a2 = vfma(vloadu(x + k + 2 * VW), vloadu(w + k + 2 * VW), a2);
      a3 = vfma(vloadu(x + k + 3 * VW), vloadu(w + k + 3 * VW), a3);
    }
    for (; k + VW <= K; k += VW) a0 = vfma(vloadu(x + k), vloadu(w + k), a0);
    float s = vsum(vadd(vadd(a0, a1), vadd(a2, a3)));
    for (; k < K; k++) s += x[k] * w[k];
    store_y(y + j * incy, s, alpha, beta);
  }
}

void gemv_axpy(int64_t j0, int64_t j1, int64_t K, float alpha, const float* x, const float* W, int64_t ldw, float beta,
               float* y, int64_t incy) {
  constexpr int64_t CH = 512;  // output chunk kept in L1 while all of K streams past it
  alignas(ALIGN) float acc[CH];
  for (int64_t c0 = j0; c0 < j1; c0 += CH) {
    const int64_t n = std::min(CH, j1 - c0), nv = n / VW * VW;
    std::memset(acc, 0, sizeof(float) * n);
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) {  // four rows per pass over acc
      const float* r0 = W + k * ldw + c0;
      const float* r1 = r0 + ldw;
      const float* r2 = r1 + ldw;
      const float* r3 = r2 + ldw;
      const vf x0 = vset1(x[k]), x1 = vset1(x[k + 1]), x2 = vset1(x[k + 2]), x3 = vset1(x[k + 3]);
      int64_t j = 0;
      for (; j < nv; j += VW) {
        vf a = vload(acc + j);
        a = vfma(x0, vloadu(r0 + j), a);
        a = vfma(x1, vloadu(r1 + j), a);
        a = vfma(x2, vloadu(r2 + j), a);
        a = vfma(x3, vloadu(r3 + j), a);
        vstore(acc + j, a);
      }
      for (; j < n; j++) acc[j] += x[k] * r0[j] + x[k + 1] * r1[j] + x[k + 2] * r2[j] + x[k + 3] * r3[j];
    }
    for (; k < K; k++) {
      const float* r = W + k * ldw + c0;
      const vf xv = vset1(x[k]);
      int64_t j = 0;
      for (; j < nv; j += VW) vstore(acc + j, vfma(xv, vloadu(r + j), vload(acc + j)));
      for (; j < n; j++) acc[j] += x[k] * r[j];
    }
    for (int64_t j = 0; j < n; j++) store_y(y + (c0 + j) * incy, acc[j], alpha, beta);
  }
}

thread_local AlignedBuf tl_xvec, tl_wvec;  // gathered strided vectors of a matrix-vector product

// M == 1 or N == 1 through gemv_*; both cases become "n outputs, each a K-long sum".
void sgemv_path(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool threaded) {
  // M == 1: x = op(A) row 0 (stride lda if transA), outputs j < N along C's row, matrix op(B):
  //   op(B)(k, j) = B[j*ldb + k] (transB: dot form) or B[k*ldb + j] (axpy form).
  // N == 1: x = op(B) column 0 (stride ldb unless transB), outputs i < M down C's column (stride
  //   ldc), matrix op(A)^T: op(A)(i, k) = A[i*lda + k] (dot form) or A[k*lda + i] (transA: axpy).
  const bool row = M == 1;
  const int64_t n = row ? N : M;
  const float* xs = row ? A : B;
  const int64_t incx = row ? (transA ? lda : 1) : (transB ? 1 : ldb);
  const float* W = row ? B : A;
  int64_t ldw = row ? ldb : lda;
  bool dot = row ? transB : !transA;
  const int64_t incy = row ? 1 : ldc;

  const float* x = xs;
  if (incx != 1) {
    float* g = tl_xvec.get(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; k++) g[k] = xs[k * incx];
    x = g;
  }
  if (n == 1 && !dot) {  // a single dot product: make W's one column contiguous too
    if (ldw != 1) {
      float* g = tl_wvec.get(static_cast<size_t>(K));
      for (int64_t k = 0; k < K; k++) g[k] = W[k * ldw];
      W = g;
    }
    dot = true;
    ldw = K;
  }
  auto run = [&](int64_t j0, int64_t j1) {
    if (dot) {
      gemv_dot(j0, j1, K, alpha, x, W, ldw, beta, C, incy);
    } else {
      gemv_axpy(j0, j1, K, alpha, x, W, ldw, beta, C, incy);
    }
  };
  // Below ~256 KiB of matrix a second thread costs more to wake than it saves.
  if (!threaded || pool().size() == 1 || n * K < 64 * 1024 || n < 32) {
    run(0, n);
  } else {
    parallel_for(n, 16, [&](int64_t j0, int64_t j1, int) { run(j0, j1); });
  }
}

// ---------------------------------------------------------------------------------------------
// C = beta * C (beta == 0: zero, ignoring old contents).
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++) {
    float* c = C + i * ldc;
    if (beta == 0.f) {
      std::memset(c, 0, sizeof(float) * N);
    } else if (beta != 1.f) {
      for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
  }
}

// Small products: a direct loop beats packing. Same semantics as the packed path.
void sgemm_small(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++) {
    for (int64_t j = 0; j < N; j++) {
      float acc = 0.f;
      for (int64_t k = 0; k < K; k++) {
        float a = transA ? A[k * lda + i] : A[i * lda + k];
        float b = transB ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      float* c = C + i * ldc + j;
      *c = beta == 0.f ? alpha * acc : alpha * acc + beta * *c;
    }
  }
}

// Rows [r0, r1) of a row-major matrix (ld floats apart), cols floats each, to prefetch into L2 in
// slices: slice(i, n) fetches the i-th of n near-equal parts of the row range.
struct RowFetch {
  const float* base = nullptr;
  int64_t r0 = 0, r1 = 0, ld = 0, cols = 0;
  void slice(int64_t i, int64_t n) const {
    const int64_t rows = r1 - r0;
    for (int64_t r = r0 + i * rows / n, e = r0 + (i + 1) * rows / n; r < e; r++) {
      const uintptr_t first = reinterpret_cast<uintptr_t>(base + r * ld), end = first + 4 * cols;
      for (uintptr_t a = first & ~uintptr_t(63); a < end; a += 64) __builtin_prefetch(reinterpret_cast<const void*>(a), 0, 2);
    }
  }
};

// Spins (then yields: the machine may be oversubscribed) until pred() holds.
template <class Pred>
inline void spin_until(Pred pred) {
  for (int spins = 0; !pred(); spins++) {
    if (spins < 2048) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

struct Problem {
  bool transA, transB;
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
  bool bf16;  // Precision::bf16: operands rounded to bfloat16 as they are packed
};

// Splits `units` into `parts` near-equal contiguous ranges; returns range `idx` as [b, e).
inline void split_range(int64_t units, int parts, int idx, int64_t& b, int64_t& e) {
  int64_t per = units / parts, extra = units % parts;
  b = idx * per + std::min<int64_t>(idx, extra);
  e = b + per + (idx < extra ? 1 : 0);
}

// Picks the thread grid tm x tn (tm * tn = nt) that minimises the largest per-thread share of
// micro-tiles, preferring row splits on ties (row splits don't duplicate A packing).
void choose_grid(int nt, int64_t M, int64_t nc, int& tm, int& tn) {
  const int64_t mp = (M + MR - 1) / MR, np = (nc + NR - 1) / NR;
  int64_t best = -1;
  tm = nt;
  tn = 1;
  for (int cand = nt; cand >= 1; cand--) {
    if (nt % cand) continue;
    const int64_t share = ((mp + cand - 1) / cand) * ((np + nt / cand - 1) / (nt / cand));
    if (best < 0 || share < best) {
      best = share;
      tm = cand;
      tn = nt / cand;
    }
  }
}

// A thread's home share of one (jc, pc) step: rows [m0, m1) in blocks of mc, NR panels [jp0, jp1)
// in `nsub` sub-chunks of `sublen` panels. Work units are (row block, sub-chunk) pairs, row-block
// major, so the owner reuses its packed A block across consecutive units.
struct Home {
  int64_t m0, m1, mc, nic;
  int64_t jp0, jp1, sublen, nsub;
  int64_t units() const { return (m1 > m0 && jp1 > jp0) ? nic * nsub : 0; }
};

Home home_of(int t, int tn, int tm, int64_t M, int64_t np, int64_t mc_max) {
  Home h{};
  const int im = t / tn, in = t % tn;
  int64_t mp0, mp1;
  split_range((M + MR - 1) / MR, tm, im, mp0, mp1);
  h.m0 = mp0 * MR;
  h.m1 = std::min(M, mp1 * MR);
  h.mc = balanced_block(std::max<int64_t>(h.m1 - h.m0, 1), mc_max, MR);
  h.nic = (h.m1 - h.m0 + h.mc - 1) / h.mc;
  split_range(np, tn, in, h.jp0, h.jp1);
  // At least ~4 units per home, so a thread that arrives late can be helped; sub-chunks of at
  // least 4 panels (64 columns on AVX2) keep the A packing small next to the work it feeds.
  const int64_t hp = h.jp1 - h.jp0;
  const int64_t want = h.nic >= 4 ? 1 : (4 + h.nic - 1) / std::max<int64_t>(h.nic, 1);
  h.sublen = std::max<int64_t>(std::max<int64_t>(4, (hp + want - 1) / want), 1);
  h.nsub = hp > 0 ? (hp + h.sublen - 1) / h.sublen : 0;
  return h;
}

// Per (jc, pc) step, shared by the threads of one call. No barriers: B panels are claimed from a
// counter and packed by whoever comes; a step's compute starts once all its panels are packed; a
// B buffer is repacked (two steps later) once all units that read it are done. Each thread works
// through its home units from the front, then steals other homes' units from the back, so a
// thread that wakes late or is preempted (2 cores shared with other work) slows the call down
// by less than a static split would.
struct alignas(64) StepState {
  std::atomic<int64_t> pack_next{0};
  std::atomic<int64_t> pack_done{0};
  std::atomic<int64_t> units_done{0};
  int64_t units_total = 0;
};
struct alignas(64) UnitRange {
  std::atomic<uint64_t> r{0};  // begin (low 32 bits), end (high 32 bits)
};

inline bool claim_front(std::atomic<uint64_t>& r, int64_t& unit) {
  uint64_t cur = r.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t b = cur & 0xffffffffu, e = cur >> 32;
    if (b >= e) return false;
    if (r.compare_exchange_weak(cur, (e << 32) | (b + 1), std::memory_order_relaxed)) {
      unit = static_cast<int64_t>(b);
      return true;
    }
  }
}

inline bool claim_back(std::atomic<uint64_t>& r, int64_t& unit) {
  uint64_t cur = r.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t b = cur & 0xffffffffu, e = cur >> 32;
    if (b >= e) return false;
    if (r.compare_exchange_weak(cur, ((e - 1) << 32) | b, std::memory_order_relaxed)) {
      unit = static_cast<int64_t>(e - 1);
      return true;
    }
  }
}

// Sets up one packed product for nt threads and hands its per-thread body to run(body), which must
// call body(tid) once for each tid in [0, nt): pool().run, or a share of a larger pool job (the K
// split runs two products side by side). With `helped`, threads from outside may also call
// body(tid) for tid >= nt once done with their own work: they own no home, only steal.
// bpack: the packed B buffers.
template <class Run>
void sgemm_packed(const Problem& p, int nt, AlignedBuf (&bpack)[2], Run&& run, bool helped = false) {
  const bool shared = nt > 1 || helped;  // more than one thread may touch the buffers
  const Blocking& bl = blocking();
  const int64_t kc_max = balanced_block(p.K, bl.kc, 1);
  const int64_t nc_max = balanced_block(p.N, bl.nc, NR);
  const int64_t njc = (p.N + nc_max - 1) / nc_max, npc = (p.K + kc_max - 1) / kc_max;
  const int64_t nsteps = njc * npc;
  const size_t bsize = static_cast<size_t>(kc_max) * ((nc_max + NR - 1) / NR) * NR;
  float* bbuf[2] = {bpack[0].get(bsize), nullptr};
  bbuf[1] = (shared && nsteps > 1) ? bpack[1].get(bsize) : bbuf[0];  // one thread: no overlap

  int tm, tn;
  choose_grid(nt, p.M, nc_max, tm, tn);
  const int64_t mc_max = bl.mc;

  std::unique_ptr<StepState[]> steps(new StepState[nsteps]);
  std::unique_ptr<UnitRange[]> ranges(new UnitRange[nsteps * nt]);
  int64_t stride = 0;  // unit slots per home
  for (int64_t s = 0; s < nsteps; s++) {
    const int64_t jc = (s / npc) * nc_max, nc = std::min(nc_max, p.N - jc), np = (nc + NR - 1) / NR;
    int64_t total = 0;
    for (int t = 0; t < nt; t++) {
      const int64_t u = home_of(t, tn, tm, p.M, np, mc_max).units();
      ranges[s * nt + t].r.store(static_cast<uint64_t>(u) << 32, std::memory_order_relaxed);
      total += u;
      stride = std::max(stride, u);
    }
    steps[s].units_total = total;
  }
  // done_step[t * stride + u]: the latest step at which unit u of home t was finished. Within one jc
  // block every step has the same units over the same C tiles, and a unit may run on a different
  // thread from one step to the next (stealing), so at pc > 0 it waits for its own previous step.
  // (A later step of another jc block cannot have raised the value early: reaching it needs every
  // unit of two steps back finished, the B double-buffer wait.)
  std::unique_ptr<std::atomic<int64_t>[]> done_step(new std::atomic<int64_t>[std::max<int64_t>(stride * nt, 1)]);
  for (int64_t i = 0; i < stride * nt; i++) done_step[i].store(-1, std::memory_order_relaxed);

  auto body = [&](int tid) {
    float* apack = tl_apack.get(static_cast<size_t>(mc_max) * kc_max);
    int64_t a_step = -1, a_ic = -1;  // which A block apack holds

    for (int64_t s = 0; s < nsteps; s++) {
      const int64_t jc = (s / npc) * nc_max, pc = (s % npc) * kc_max;
      const int64_t nc = std::min(nc_max, p.N - jc), kc = std::min(kc_max, p.K - pc);
      const int64_t np = (nc + NR - 1) / NR;
      StepState& st = steps[s];
      float* bp = bbuf[s & 1];

      // Pack B panels (after every unit of step s - 2, which read this buffer, is done).
      if (s >= 2 && shared) {
        StepState& old = steps[s - 2];
        spin_until([&] { return old.units_done.load(std::memory_order_acquire) == old.units_total; });
      }
      for (int64_t jp; (jp = st.pack_next.fetch_add(1, std::memory_order_relaxed)) < np;) {
        const int64_t j = jp * NR;
        const int64_t nr = std::min<int64_t>(NR, nc - j);
#if defined(__AVX512BF16__)
        if (p.bf16) {
          uint32_t* dst = reinterpret_cast<uint32_t*>(bp + jp * kc * NR);
          if (p.transB) {
            pack_pairs_from_cols(p.B + (jc + j) * p.ldb + pc, p.ldb, kc, NR, static_cast<int>(nr), dst);
          } else {
            bf16_row_pairs(dst, NR, p.B + pc * p.ldb + jc + j, p.ldb, kc, nr, NR);  // op(B) rows are k
          }
          st.pack_done.fetch_add(1, std::memory_order_release);
          continue;
        }
#endif
        pack_b_panel(p.transB, p.B, p.ldb, pc, kc, jc + j, nr, bp + jp * kc * NR);
        if (p.bf16) round_panel_bf16(bp + jp * kc * NR, kc * NR);
        st.pack_done.fetch_add(1, std::memory_order_release);
      }
      // (Packing B in runs of rows, each row of B read once and dealt out to every panel, instead of
      // panel by panel down all kc rows: a third less time in this loop in a profile of the TN
      // weight-gradient products, but no faster as a whole (fp32 +0-2%, bf16 -1-3%, alternated). Nor
      // was packing a panel of the next step between units, so that its loads overlap the other
      // thread's compute: 0.98-1.0x.)
      spin_until([&] { return st.pack_done.load(std::memory_order_acquire) == np; });

      const float beta = pc == 0 ? p.beta : 1.f;
      auto do_unit = [&](int t, const Home& h, int64_t u) {
        std::atomic<int64_t>& done = done_step[t * stride + u];
        if (pc > 0 && shared) spin_until([&] { return done.load(std::memory_order_acquire) >= s - 1; });
        const int64_t icb = u / h.nsub, sub = u % h.nsub;
        const int64_t ic = h.m0 + icb * h.mc, mc = std::min(h.mc, h.m1 - ic);
        const int64_t jp0 = h.jp0 + sub * h.sublen, jp1 = std::min(h.jp1, jp0 + h.sublen);
        if (a_step != s || a_ic != ic) {
#if defined(__AVX512BF16__)
          if (p.bf16) {
            if (p.transA) {
              // TN (the weight gradients): this packing is ~30% of the bf16 product's time (the
              // product ran 467 -> 655 GFLOPS at 704 x 256 x 4096 when it was skipped), and the
              // product slows as K grows (638 GFLOPS at K 512, 510 at 4096: the source falls out of
              // cache). Tried, alternated, not kept: packing every panel's k pair in one pass down
              // the rows (0.75x), full-width loads and stores instead of masked ones (0.91-1.0x),
              // prefetching 8-32 rows ahead inside the loop (no gain), and KC 1024 for bf16 (TN
              // +4-10% alone, but the small step 0.996x and medium's TN shapes 0.94-1.0x).
              for_transposed_chunks(p.lda, mc, kc, [&](int64_t k0, int64_t kn, int64_t ir, int mr) {
                uint32_t* dst = reinterpret_cast<uint32_t*>(apack + ir * kc) + (k0 / 2) * MR;
                bf16_row_pairs(dst, MR, p.A + (pc + k0) * p.lda + ic + ir, p.lda, kn, mr, MR);  // A's rows are k
              });
            } else {
              for (int64_t ir = 0; ir < mc; ir += MR) {
                const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ir));
                pack_pairs_from_cols(p.A + (ic + ir) * p.lda + pc, p.lda, kc, MR, mr,
                                     reinterpret_cast<uint32_t*>(apack + ir * kc));
              }
            }
          } else
#endif
          {
            pack_a(p.transA, p.A, p.lda, ic, mc, pc, kc, apack);
            if (p.bf16) round_panel_bf16(apack, (mc + MR - 1) / MR * MR * kc);
          }
          a_step = s;
          a_ic = ic;
        }
        // The source rows of the A block this home packs next (its next row block, else the next
        // step's first), fetched into L2 a slice per micro-tile while this unit computes, so the
        // packing reads cache, not memory (a training step's activations are long out of cache
        // when a GEMM reads them). (Fetching the next step's B panels too gained nothing measurable.)
        RowFetch fa;
        if (sub == h.nsub - 1) {
          int64_t ic2 = ic + h.mc, pc2 = pc, sa = s;
          if (ic2 >= h.m1) ic2 = h.m0, sa = s + 1, pc2 = (sa % npc) * kc_max;
          if (sa < nsteps && ic2 < h.m1) {
            const int64_t mc2 = std::min(h.mc, h.m1 - ic2), kc2 = std::min(kc_max, p.K - pc2);
            fa = RowFetch{p.transA ? p.A + pc2 * p.lda + ic2 : p.A + ic2 * p.lda + pc2, 0, p.transA ? kc2 : mc2, p.lda,
                          p.transA ? mc2 : kc2};
          }
        }
        const int64_t ntiles = (jp1 - jp0) * ((mc + MR - 1) / MR);
        int64_t tile_i = 0;
        for (int64_t jp = jp0; jp < jp1; jp++) {
          const int64_t j = jp * NR;
          const int nr = static_cast<int>(std::min<int64_t>(NR, nc - j));
          const float* bpanel = bp + jp * kc * NR;
          for (int64_t ir = 0; ir < mc; ir += MR, tile_i++) {
            const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ir));
            float* c = p.C + (ic + ir) * p.ldc + jc + j;
            fa.slice(tile_i, ntiles);
#if defined(__AVX512BF16__)
            if (p.bf16) {
              micro_kernel_bf16(kc, apack + ir * kc, bpanel, c, p.ldc, mr, nr, p.alpha, beta);
              continue;
            }
#endif
            micro_kernel(kc, apack + ir * kc, bpanel, c, p.ldc, mr, nr, p.alpha, beta);
          }
        }
        // Raise to s (never lower: this unit's run in the next jc block, which has no dependence on
        // this one, may already have finished and stored a later step).
        for (int64_t cur = done.load(std::memory_order_relaxed);
             cur < s && !done.compare_exchange_weak(cur, s, std::memory_order_release, std::memory_order_relaxed);) {
        }
        st.units_done.fetch_add(1, std::memory_order_release);
      };

      int64_t u;
      const bool has_home = tid < nt;
      if (has_home) {
        const Home own = home_of(tid, tn, tm, p.M, np, mc_max);
        while (claim_front(ranges[s * nt + tid].r, u)) do_unit(tid, own, u);
      }
      for (int o = has_home ? 1 : 0; o < nt; o++) {
        const int victim = (tid + o) % nt;
        const Home h = home_of(victim, tn, tm, p.M, np, mc_max);
        while (claim_back(ranges[s * nt + victim].r, u)) do_unit(victim, h, u);
      }
    }
  };

  run(body);
}

void sgemm_packed(const Problem& p, int nt) {
  sgemm_packed(p, nt, tl_bpack, [nt](auto& body) {
    if (nt == 1) {
      body(0);
    } else {
      pool().run(body);
    }
  });
}

// Products whose K is long next to M and N, the weight gradients dW (OC, C) = dY^T X (K = tokens)
// above all, are split in two along K: C = (beta C + alpha A[:, :kh] B[:kh]) + alpha A[:, kh:] B[kh:].
// The halves run side by side on two halves of the threads, the second into a scratch C, and are
// added at the end (one M x N pass); a thread done with its half steals units of the other's.
// Split over rows and panels alone, such a product is many short (jc, pc) steps, each a rendezvous
// of all the threads over a packed B block that one core writes and the others read; two products
// on half the threads each have half the rendezvous, with half the threads. Nothing is packed more
// often than unsplit (B once, A once per thread grid column). Scratch: M N floats (<= 16 MiB), kept
// by the calling thread like the packing buffers. Zen 5, 2 cores, one addon, split and unsplit
// alternated call by call:
//   TN 256 x 256 x 4096   fp32 +20%, bf16 +19%      TN 704 x 256 x 4096    +13%, +19%
//   TN 1376 x 512 x 4096  +6%, +12%                 NN 1024^3 +2%, -1%; 2048^3 +4%, +6%
// and where K < max(M, N) (the dX products) it lost 4-8%, so those stay unsplit. A training step,
// alternated: small fp32 -1.6%, bf16 -2.1%; medium fp32 +0.7% (noise), bf16 -4.6%.
// The split depends on the shape alone, never on the thread count, and one thread runs the two
// halves one after the other: the bits stay the same whatever the thread count.
bool ksplit_shape(int64_t M, int64_t N, int64_t K) {
  return K >= 1024 && K >= std::max(M, N) && M * N <= (int64_t(4) << 20) && M * N * K >= 64 * 64 * 64;  // scratch <= 16 MiB
}

thread_local AlignedBuf tl_kpart;          // (M, N) the second half's product, owned by the calling thread
thread_local AlignedBuf tl_bpack_half[2];  // the second half's packed B blocks, owned by the calling thread

void sgemm_ksplit(const Problem& p, int nt) {
  // kh, a multiple of 16: the second half's operands start 64-byte aligned where their rows do
  const int64_t M = p.M, N = p.N, kh = p.K / 32 * 16;
  float* part = tl_kpart.get(static_cast<size_t>(M) * N);
  Problem lo = p, hi = p;
  lo.K = kh;
  hi.K = p.K - kh;
  hi.A = p.transA ? p.A + kh * p.lda : p.A + kh;
  hi.B = p.transB ? p.B + kh : p.B + kh * p.ldb;
  hi.C = part;
  hi.ldc = N;
  hi.beta = 0.f;
  auto add_rows = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      float* c = p.C + r * p.ldc;
      const float* h = part + r * N;
      for (int64_t j = 0; j < N; j++) c[j] += h[j];
    }
  };
  if (nt == 1) {
    sgemm_packed(lo, 1);
    sgemm_packed(hi, 1);
    add_rows(0, M);
    return;
  }
  nt = pool().size();  // the job below runs on every pool thread, and its barrier counts them all
  const int nlo = (nt + 1) / 2, nhi = nt - nlo;
  std::atomic<int> halves_done{0};
  sgemm_packed(lo, nlo, tl_bpack, [&](auto& body_lo) {
    sgemm_packed(hi, nhi, tl_bpack_half, [&](auto& body_hi) {
      pool().run([&](int tid) {
        if (tid < nlo) {
          body_lo(tid);
          body_hi(nhi + tid);  // then help
        } else {
          body_hi(tid - nlo);
          body_lo(tid);
        }
        halves_done.fetch_add(1, std::memory_order_acq_rel);
        spin_until([&] { return halves_done.load(std::memory_order_acquire) == nt; });
        int64_t r0, r1;
        split_range(M, nt, tid, r0, r1);
        add_rows(r0, r1);
      });
    }, /*helped=*/true);
  }, /*helped=*/true);
}

}  // namespace

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool threaded, Precision prec) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) {  // BLAS convention: A and B are not read
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const bool bf16 = prec == Precision::bf16;  // every product packed, so every operand is rounded
  if ((M == 1 || N == 1) && !bf16) {
    sgemv_path(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, threaded);
    return;
  }
  const double flops = static_cast<double>(M) * N * K;
  if ((flops <= 16.0 * 16 * 16 || (M < 4 && N < 4)) && !bf16) {
    sgemm_small(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const Problem p{transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bf16};
  int nt = threaded ? pool().size() : 1;
  // Below ~64^3 waking a second thread costs more than it saves.
  if (flops < 64.0 * 64 * 64) nt = 1;
  if (ksplit_shape(M, N, K)) {
    sgemm_ksplit(p, nt);
    return;
  }
  sgemm_packed(p, nt);
}

const char* sgemm_kernel_name() { return KERNEL_NAME; }

bool bf16_native() { return BF16_NATIVE; }

}  // namespace lc
