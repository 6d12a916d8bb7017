// Single-precision GEMM, row-major, the one matmul every native op is built on.
#pragma once
#include <cstdint>

namespace lc {

// C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C, all row-major.
// op(A) = A (M, K) with leading dimension lda, or A^T when transA (A stored (K, M)); same for B.
// beta == 0 means C is overwritten (its old contents, even NaN, are ignored).
// Multi-threaded over the process pool (lc::pool()); must not be called from inside a pool job
// unless `threaded` is false.
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
           float* C, int64_t ldc, bool threaded = true);

// Name of the compiled kernel ("avx512", "avx2" or "scalar"), for benchmark reports.
const char* sgemm_kernel_name();

}  // namespace lc
