#include "pool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace lc {

struct ThreadPool::Impl {
  std::mutex mu;
  std::condition_variable wake, done;
  const std::function<void(int)>* job = nullptr;
  uint64_t generation = 0;
  int pending = 0;
  bool stop = false;
  std::vector<std::thread> workers;
};

ThreadPool::ThreadPool(int threads) : impl_(new Impl), nthreads_(threads < 1 ? 1 : threads) {
  for (int tid = 1; tid < nthreads_; tid++) {
    impl_->workers.emplace_back([this, tid] {
      uint64_t seen = 0;
      for (;;) {
        const std::function<void(int)>* job;
        {
          std::unique_lock<std::mutex> lock(impl_->mu);
          impl_->wake.wait(lock, [&] { return impl_->stop || impl_->generation != seen; });
          if (impl_->stop) return;
          seen = impl_->generation;
          job = impl_->job;
        }
        (*job)(tid);
        std::lock_guard<std::mutex> lock(impl_->mu);
        if (--impl_->pending == 0) impl_->done.notify_one();
      }
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
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
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->job = &fn;
    impl_->pending = nthreads_ - 1;
    impl_->generation++;
  }
  impl_->wake.notify_all();
  fn(0);
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->done.wait(lock, [&] { return impl_->pending == 0; });
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
