#include "threadpool.h"

#include <algorithm>
#include <atomic>

#include "blas.h"

namespace cloze {

namespace {
thread_local bool t_in_pool = false;
}

ThreadPool& ThreadPool::get() {
  static ThreadPool pool;
  return pool;
}

ThreadPool::ThreadPool() {
  unsigned hc = std::thread::hardware_concurrency();
  start(hc == 0 ? 1 : static_cast<int>(hc));
}

ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::start(int n) {
  nthreads_ = std::max(1, n);
  quit_ = false;
  // A new worker has seen every call made before it: had it started from 0 after a resize, its first wake-up
  // would take the last call's generation for new work, and its extra `--active_` could land in a later call,
  // ending that call's wait early (its tasks still running) or never (active_ at −1). A CI run hung so, in a conv
  // test after setNumThreads. start() runs before any call can see the new workers (constructor, or resize under
  // call_mu_), so generation_ is stable here.
  const uint64_t seen = generation_;
  for (int t = 1; t < nthreads_; t++) workers_.emplace_back([this, t, seen] { worker(t, seen); });
  blas_set_threads(nthreads_);
}

void ThreadPool::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    quit_ = true;
  }
  cv_work_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void ThreadPool::resize(int n) {
  std::lock_guard<std::mutex> call(call_mu_);
  stop();
  start(n);
}

void ThreadPool::run_tasks(int tid) {
  for (;;) {
    int64_t i = next_.fetch_add(1);
    if (i >= ntasks_) break;
    try {
      (*fn_)(i, tid);
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!error_) error_ = std::current_exception();
      next_.store(ntasks_);  // stop handing out work
    }
  }
}

void ThreadPool::worker(int tid, uint64_t seen) {
  t_in_pool = true;
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_work_.wait(lk, [&] { return quit_ || generation_ != seen; });
      if (quit_) return;
      seen = generation_;
    }
    run_tasks(tid);
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (--active_ == 0) cv_done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t ntasks, const std::function<void(int64_t, int)>& fn) {
  if (ntasks <= 0) return;
  if (t_in_pool || nthreads_ == 1 || ntasks == 1) {
    for (int64_t i = 0; i < ntasks; i++) fn(i, 0);
    return;
  }
  std::lock_guard<std::mutex> call(call_mu_);
  {
    std::lock_guard<std::mutex> lk(mu_);
    fn_ = &fn;
    ntasks_ = ntasks;
    next_.store(0);
    error_ = nullptr;
    active_ = nthreads_ - 1;
    generation_++;
  }
  cv_work_.notify_all();
  t_in_pool = true;
  run_tasks(0);
  t_in_pool = false;
  std::exception_ptr err;
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, [&] { return active_ == 0; });
    fn_ = nullptr;
    err = error_;
    error_ = nullptr;
  }
  if (err) std::rethrow_exception(err);
}

void parallel_for_contiguous(int64_t n, const std::function<void(int64_t, int)>& fn) {
  if (n <= 0) return;
  ThreadPool& pool = ThreadPool::get();
  const int64_t parts = std::min<int64_t>(pool.size(), n);
  // A share's front (next task from the front) and back (one past the last task left) are packed into one
  // atomic word so that its owner and a thief can never take the same task; 32 bits each.
  if (parts <= 1 || n >= (int64_t(1) << 31)) {
    pool.parallel_for(n, fn);
    return;
  }
  struct alignas(64) Share {
    std::atomic<uint64_t> range;  // front << 32 | back
  };
  std::vector<Share> shares(parts);
  for (int64_t i = 0; i < parts; i++)
    shares[i].range.store(static_cast<uint64_t>(i * n / parts) << 32 | static_cast<uint64_t>((i + 1) * n / parts));
  // Takes one task from the front (owner) or the back (thief) of share i; −1 when it is empty.
  auto take = [&](int64_t i, bool front) -> int64_t {
    uint64_t v = shares[i].range.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t f = v >> 32, b = v & 0xffffffffu;
      if (f >= b) return -1;
      const uint64_t next = front ? ((f + 1) << 32 | b) : (f << 32 | (b - 1));
      if (shares[i].range.compare_exchange_weak(v, next, std::memory_order_relaxed))
        return static_cast<int64_t>(front ? f : b - 1);
    }
  };
  // Set by the first task that throws, so that no thread starts another (parallel_for stops handing out work the
  // same way); parallel_for rethrows that exception once the running tasks end.
  std::atomic<bool> failed{false};
  auto run = [&](int64_t t, int tid) {
    try {
      fn(t, tid);
    } catch (...) {
      failed.store(true);
      throw;
    }
  };
  pool.parallel_for(parts, [&](int64_t mine, int tid) {
    for (int64_t t; !failed.load() && (t = take(mine, true)) >= 0;) run(t, tid);
    for (int64_t k = 1; k < parts; k++) {
      const int64_t other = (mine + k) % parts;
      for (int64_t t; !failed.load() && (t = take(other, false)) >= 0;) run(t, tid);
    }
  });
}

void parallel_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  ThreadPool& pool = ThreadPool::get();
  grain = std::max<int64_t>(1, grain);
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, 4 * static_cast<int64_t>(pool.size()));
  chunks = std::max<int64_t>(1, chunks);
  int64_t step = (n + chunks - 1) / chunks;
  pool.parallel_for(chunks, [&](int64_t c, int) {
    int64_t b = c * step, e = std::min(n, b + step);
    if (b < e) fn(b, e);
  });
}

}  // namespace cloze
