// The one CPU thread pool every kernel runs on. parallel_for hands out task
// indices dynamically; the calling thread works too. A parallel_for issued
// from inside a task runs serially, so kernels may nest without deadlock.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cloze {

class ThreadPool {
 public:
  static ThreadPool& get();
  int size() const { return nthreads_; }
  // Resizes the pool (n >= 1). Also sets the BLAS library's thread count.
  void resize(int n);
  // Runs fn(task, thread) for task in [0, ntasks); thread is in [0, size()).
  // The first exception thrown by a task is rethrown here after all tasks end.
  void parallel_for(int64_t ntasks, const std::function<void(int64_t, int)>& fn);
  ~ThreadPool();

 private:
  ThreadPool();
  void start(int n);
  void stop();
  void worker(int tid, uint64_t seen);  // seen: the last call's generation when the worker was started
  void run_tasks(int tid);

  int nthreads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // one parallel_for at a time
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  uint64_t generation_ = 0;
  bool quit_ = false;
  int active_ = 0;
  const std::function<void(int64_t, int)>* fn_ = nullptr;
  int64_t ntasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::exception_ptr error_;
};

// Runs fn(task, thread) for task in [0, n) like ThreadPool::parallel_for, but each thread first works through a
// contiguous share of [0, n) in order, then takes tasks from the far ends of the others' shares until none are
// left. For tasks whose data lie in order in memory (attention's heads): a thread's next task then continues the
// stream its hardware prefetchers already follow. The attention forward ran 1.4–3.8% faster than with tasks handed
// out one at a time, which alternated the heads between the threads (bench/RESULTS.md, "Register-resident
// accumulators"). As parallel_for, the first exception a task throws is rethrown after the running tasks end, and
// no task starts after it is thrown. Called from inside a pool task, it runs every task on the calling thread.
void parallel_for_contiguous(int64_t n, const std::function<void(int64_t, int)>& fn);

// Convenience: splits [0, n) into about `4 * threads` contiguous chunks of at
// least `grain` items and calls fn(begin, end).
void parallel_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace cloze
