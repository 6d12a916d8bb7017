// Single-precision GEMM, row-major, the one matmul every native op is built on.
#pragma once
#include <cstdint>

namespace lc {

// What the products are computed in. fp32: float32 operands. bf16 (mixed precision): each operand
// rounded to bfloat16 (round to nearest even) as it is packed, products summed in float32, C
// float32. On a CPU with AVX512-BF16 (the avx512bf16 build) the packed pairs go through vdpbf16ps,
// twice the multiply rate of float32 FMAs; elsewhere the rounded values run the float32 kernel
// (same operands, slower than fp32). In bf16 every product takes the packed path (so every operand
// is rounded), even the matrix-vector and tiny ones fp32 computes directly.
enum class Precision { fp32, bf16 };

// C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C, all row-major.
// op(A) = A (M, K) with leading dimension lda, or A^T when transA (A stored (K, M)); same for B.
// beta == 0 means C is overwritten (its old contents, even NaN, are ignored).
// Multi-threaded over the process pool (lc::pool()); must not be called from inside a pool job
// unless `threaded` is false.
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
           float* C, int64_t ldc, bool threaded = true, Precision prec = Precision::fp32);

// Name of the compiled kernel ("avx512bf16", "avx512", "avx2" or "scalar"), for benchmark reports.
const char* sgemm_kernel_name();

// Whether bf16 products run on bf16 hardware (vdpbf16ps) in this build, rather than emulated.
bool bf16_native();

}  // namespace lc
