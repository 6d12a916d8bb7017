// Persistent thread pool: workers are created once and reused by every kernel call, so a call
// costs a wake-up, not a thread spawn. The calling thread is worker 0 and takes part in the work.
#pragma once
#include <cstdint>
#include <functional>

namespace lc {

// The spin-wait hint (PAUSE on x86): spinning threads yield the core's shared resources.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return nthreads_; }
  // Runs fn(tid) once on each of the pool's threads (tid 0 is the caller) and waits for all.
  // Not reentrant: a kernel running inside fn must not call run() again.
  void run(const std::function<void(int tid)>& fn);

 private:
  struct Impl;
  Impl* impl_;
  int nthreads_;
};

// The process-wide pool: LONGCTX_THREADS threads, or one per hardware thread.
ThreadPool& pool();

// Splits [0, n) into one contiguous range per thread (ranges are multiples of `align` except the
// last) and runs fn(begin, end, tid) on each non-empty range.
void parallel_for(int64_t n, int64_t align, const std::function<void(int64_t, int64_t, int)>& fn);

}  // namespace lc
