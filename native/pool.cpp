#include "pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace lc {

// Waking a sleeping thread (futex) costs 10-50 us on these VMs, more than a whole small kernel:
// decoding calls ~100 kernels per token, each a few tens of microseconds. So a worker that finishes
// a job spins for a short while (kSpin) watching for the next one before it sleeps, and the caller
// spins briefly for the workers to finish before it sleeps. The mutex and condition variables are
// the fallback for longer gaps; the generation counter is only changed under the mutex, so a
// worker that stops spinning and goes to sleep cannot miss a job.
namespace {
constexpr auto kSpin = std::chrono::microseconds(100);

// Spins until pred() or kSpin has passed; returns pred()'s last value.
template <class Pred>
bool spin_for(Pred pred) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; i++) {
    if (pred()) return true;
    cpu_relax();
    if ((i & 63) == 63) {
      if (std::chrono::steady_clock::now() > until) return pred();
      // with more threads than free cores (LONGCTX_THREADS above the core count, other processes)
      // a spinning thread may hold the core the awaited one needs: let it run
      std::this_thread::yield();
    }
  }
}
}  // namespace

struct ThreadPool::Impl {
  std::mutex mu;
  std::condition_variable wake, done;
  const std::function<void(int)>* job = nullptr;  // written before generation is raised (release)
  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
};

ThreadPool::ThreadPool(int threads) : impl_(new Impl), nthreads_(threads < 1 ? 1 : threads) {
  for (int tid = 1; tid < nthreads_; tid++) {
    impl_->workers.emplace_back([this, tid] {
      Impl& im = *impl_;
      uint64_t seen = 0;
      for (;;) {
        auto ready = [&] { return im.stop.load(std::memory_order_acquire) || im.generation.load(std::memory_order_acquire) != seen; };
        if (!spin_for(ready)) {
          std::unique_lock<std::mutex> lock(im.mu);
          im.wake.wait(lock, ready);
        }
        if (im.stop.load(std::memory_order_acquire)) return;
        seen = im.generation.load(std::memory_order_acquire);
        (*im.job)(tid);
        if (im.pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          std::lock_guard<std::mutex> lock(im.mu);
          im.done.notify_one();
        }
      }
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop.store(true, std::memory_order_release);
  }
  impl_->wake.notify_all();
  for (auto& t : impl_->workers) t.join();
  delete impl_;
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  if (nthreads_ == 1) {
    fn(0);
    return;
  }
  Impl& im = *impl_;
  {
    std::lock_guard<std::mutex> lock(im.mu);
    im.job = &fn;
    im.pending.store(nthreads_ - 1, std::memory_order_relaxed);
    im.generation.fetch_add(1, std::memory_order_release);
  }
  im.wake.notify_all();
  fn(0);
  auto finished = [&] { return im.pending.load(std::memory_order_acquire) == 0; };
  if (spin_for(finished)) return;
  std::unique_lock<std::mutex> lock(im.mu);
  im.done.wait(lock, finished);
}

static int default_threads() {
  if (const char* s = std::getenv("LONGCTX_THREADS")) {
    int n = std::atoi(s);
    if (n >= 1) return n;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool& pool() {
  static ThreadPool p(default_threads());
  return p;
}

void parallel_for(int64_t n, int64_t align, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  ThreadPool& p = pool();
  int nt = p.size();
  if (align < 1) align = 1;
  int64_t units = (n + align - 1) / align;
  if (nt == 1 || units == 1) {
    fn(0, n, 0);
    return;
  }
  p.run([&](int tid) {
    int64_t per = units / nt, extra = units % nt;
    int64_t u0 = tid * per + (tid < extra ? tid : extra);
    int64_t u1 = u0 + per + (tid < extra ? 1 : 0);
    int64_t b = u0 * align, e = u1 * align < n ? u1 * align : n;
    if (b < e) fn(b, e, tid);
  });
}

}  // namespace lc
