// Helpers for the bench harnesses (bench/ops.ts, bench/matmul-attention.ts):
// the machine's measured float32 FMA peak and memory bandwidth, the yardsticks
// every GFLOP/s and GB/s figure is read against, and a way to hand cached free
// heap memory back to the OS before an RSS reading.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../core/microkernel.h"
#include "../core/threadpool.h"
#include "bindings.h"

namespace cloze {

namespace {

using V = VecT<float>::type;
constexpr int kW = VecT<float>::W;
// Independent accumulator chains per thread. FMA latency (4 cycles) × 2 FMA
// pipes needs at least 8 in flight; 16 hides both and still fits the 32 zmm
// (or 16 ymm) registers with the two operands.
constexpr int kChains = 16;
constexpr int64_t kInner = 4096;  // FMA rounds between clock reads

// One fused multiply-add per lane, emitted explicitly so the result does not
// depend on the compiler's floating-point contraction setting.
inline V fmadd(V a, V b, V c) {
#if defined(__AVX512F__)
  return reinterpret_cast<V>(_mm512_fmadd_ps(reinterpret_cast<__m512>(a), reinterpret_cast<__m512>(b),
                                             reinterpret_cast<__m512>(c)));
#elif defined(__FMA__)
  return reinterpret_cast<V>(_mm256_fmadd_ps(reinterpret_cast<__m256>(a), reinterpret_cast<__m256>(b),
                                             reinterpret_cast<__m256>(c)));
#else
  return a * b + c;
#endif
}

// Asm operand constraint for "any vector register", per ISA.
#if defined(__x86_64__) || defined(__i386__)
#define CLOZE_VREG "+v"
#elif defined(__aarch64__)
#define CLOZE_VREG "+w"
#else
#define CLOZE_VREG "+m"  // no register constraint known: correct, but measures loads and stores too
#endif

struct ThreadResult {
  double flops = 0;
  double seconds = 0;
  float sink = 0;
};

#define CLOZE_CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
static_assert(kChains == 16, "CLOZE_CHAINS names 16 accumulators");

struct Chains {
  V acc[kChains];
};

// kInner rounds of kChains FMAs. The chains are named locals and the loop has
// no call in it: GCC otherwise keeps them on the stack (the clock call
// clobbers every vector register), and the loads and stores halve the rate.
__attribute__((noinline)) void fma_rounds(Chains& ch, V vm, V va) {
#define CLOZE_LOAD(c) V a##c = ch.acc[c];
#define CLOZE_FMA(c) a##c = fmadd(a##c, vm, va);
#define CLOZE_PIN(c) asm volatile("" : CLOZE_VREG(a##c));
#define CLOZE_STORE(c) ch.acc[c] = a##c;
  CLOZE_CHAINS(CLOZE_LOAD)
  for (int64_t i = 0; i < kInner; i++) {
    CLOZE_CHAINS(CLOZE_FMA)
    // Keeps every chain live in a register and stops the compiler from folding rounds.
    CLOZE_CHAINS(CLOZE_PIN)
  }
  CLOZE_CHAINS(CLOZE_STORE)
#undef CLOZE_STORE
#undef CLOZE_PIN
#undef CLOZE_FMA
#undef CLOZE_LOAD
}
#undef CLOZE_CHAINS
#undef CLOZE_VREG

// Runs the chains for about `ms` milliseconds. acc ← acc·m + a converges to
// a/(1−m) = 1: no overflow, no denormals.
ThreadResult fma_chains(double ms, float m, float add) {
  using clock = std::chrono::steady_clock;
  Chains ch;
  for (int c = 0; c < kChains; c++) ch.acc[c] = vsplat<float>(static_cast<float>(c) * 0.001f);
  const V vm = vsplat<float>(m), va = vsplat<float>(add);
  const auto t0 = clock::now();
  const auto until = t0 + std::chrono::duration<double, std::milli>(ms);
  int64_t rounds = 0;
  auto now = t0;
  do {
    fma_rounds(ch, vm, va);
    rounds += kInner;
    now = clock::now();
  } while (now < until);
  ThreadResult r;
  r.seconds = std::chrono::duration<double>(now - t0).count();
  r.flops = 2.0 * static_cast<double>(rounds) * kChains * kW;
  V s = vsplat<float>(0);
  for (int c = 0; c < kChains; c++) s += ch.acc[c];
  for (int l = 0; l < kW; l++) r.sink += s[l];
  return r;
}

volatile float g_sink = 0;
volatile float g_mul = 0.999f, g_add = 0.001f;  // read at run time: no constant folding

// Every pool thread runs the chains at the same time; returns the summed rate.
double measure_peak_gflops(double ms) {
  ThreadPool& pool = ThreadPool::get();
  const int n = pool.size();
  std::vector<ThreadResult> res(n);
  std::atomic<int> arrived{0};
  const float m = g_mul, add = g_add;
  pool.parallel_for(n, [&](int64_t task, int) {
    // Barrier: a task only starts once every thread holds one, so no thread
    // runs two tasks back to back and all n chains overlap in time. The
    // deadline guards against a pool that runs tasks serially.
    arrived.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (arrived.load() < n && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    res[task] = fma_chains(ms, m, add);
  });
  double gflops = 0;
  float sink = 0;
  for (const auto& r : res) {
    if (r.seconds > 0) gflops += r.flops / r.seconds * 1e-9;
    sink += r.sink;
  }
  g_sink = sink;
  return gflops;
}

// STREAM's "scale" kernel, dst[i] = s·src[i], over two buffers of `bytes`/2
// each, split into one contiguous slice per pool thread. Each slice is first
// touched by a pool task before timing, so page faults stay out of the figure
// (and, on a NUMA machine, pages land near the threads that use them, as far
// as the pool's scheduling allows). Counted bytes per pass: one read and one
// write of each element, as STREAM counts them; the write-allocate read of
// dst is not counted, so a store-heavy op compares like for like.
volatile float g_scale = 0.5f;

double measure_peak_bandwidth(double ms, int64_t bytes) {
  ThreadPool& pool = ThreadPool::get();
  const int n = pool.size();
  const int64_t count = std::max<int64_t>(bytes / 2 / static_cast<int64_t>(sizeof(float)), int64_t{4096} * n);
  std::unique_ptr<float[]> src(new float[count]), dst(new float[count]);
  float* const s = src.get();
  float* const d = dst.get();
  const float k = g_scale;
  auto slice = [&](int64_t task, int64_t& lo, int64_t& hi) {
    lo = count * task / n;
    hi = count * (task + 1) / n;
  };
  pool.parallel_for(n, [&](int64_t task, int) {
    int64_t lo, hi;
    slice(task, lo, hi);
    for (int64_t i = lo; i < hi; i++) {
      s[i] = static_cast<float>(i & 1023);
      d[i] = 0.0f;
    }
  });
  auto pass = [&]() {
    pool.parallel_for(n, [&](int64_t task, int) {
      int64_t lo, hi;
      slice(task, lo, hi);
      for (int64_t i = lo; i < hi; i++) d[i] = k * s[i];
    });
  };
  pass();  // warm: caches, TLB, the pool's threads awake
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const auto until = t0 + std::chrono::duration<double, std::milli>(ms);
  int64_t passes = 0;
  auto now = t0;
  do {
    pass();
    passes++;
    now = clock::now();
  } while (now < until);
  g_sink = d[count / 2];
  const double seconds = std::chrono::duration<double>(now - t0).count();
  return 2.0 * static_cast<double>(count) * sizeof(float) * static_cast<double>(passes) / seconds * 1e-9;
}

}  // namespace

void register_bench(Napi::Env env, Napi::Object exports) {
  (void)env;
  // measurePeakGflops(ms) -> float32 FMA GFLOP/s summed over every pool thread.
  CLOZE_EXPORT(exports, "measurePeakGflops", [](const ArgReader& a) -> Napi::Value {
    const int64_t ms = a.integer(0, "ms", 1, 60000);
    return Napi::Number::New(a.env(), measure_peak_gflops(static_cast<double>(ms)));
  });

  // measurePeakBandwidth(ms, bytes) -> GB/s of dst = s·src over two buffers of bytes/2 each, every
  // pool thread streaming its own slice. Buffers far larger than the last-level cache measure memory;
  // small ones, the caches.
  CLOZE_EXPORT(exports, "measurePeakBandwidth", [](const ArgReader& a) -> Napi::Value {
    const int64_t ms = a.integer(0, "ms", 1, 60000);
    const int64_t bytes = a.integer(1, "bytes", 1, int64_t{1} << 36);
    return Napi::Number::New(a.env(), measure_peak_bandwidth(static_cast<double>(ms), bytes));
  });

  // poolScheduleTrace(n, slowTask, slowUs, contiguous, throwTask) -> Int32Array [3n + 1], for the scheduler's tests.
  // Runs n tasks under parallel_for_contiguous (contiguous) or ThreadPool::parallel_for. For each task: how many
  // times it ran, the pool thread that ran it, and its place in the order tasks began (the last run's; −1 if it never
  // ran). Task slowTask sleeps slowUs µs first (−2: every task does; −1: none), which makes the other threads steal
  // from its share; task throwTask (−1: none) then throws. The last element is 1 if the scheduler rethrew.
  CLOZE_EXPORT(exports, "poolScheduleTrace", [](const ArgReader& a) -> Napi::Value {
    const int64_t n = a.integer(0, "n", 0, int64_t{1} << 20);
    const int64_t slow = a.integer(1, "slowTask", -2, int64_t{1} << 20);
    const int64_t slow_us = a.integer(2, "slowUs", 0, 1000000);
    const bool contiguous = a.boolean(3, "contiguous");
    const int64_t throw_task = a.integer(4, "throwTask", -1, int64_t{1} << 20);
    std::vector<std::atomic<int32_t>> runs(n);
    std::vector<int32_t> tid_of(n, -1), order(n, -1);
    std::atomic<int32_t> began{0};
    auto fn = [&](int64_t t, int tid) {
      order[t] = began.fetch_add(1);
      if (t == slow || slow == -2) std::this_thread::sleep_for(std::chrono::microseconds(slow_us));
      runs[t].fetch_add(1);
      tid_of[t] = tid;
      if (t == throw_task) throw std::runtime_error("poolScheduleTrace: the task asked to throw");
    };
    bool threw = false;
    try {
      if (contiguous)
        parallel_for_contiguous(n, fn);
      else
        ThreadPool::get().parallel_for(n, fn);
    } catch (const std::runtime_error&) {
      threw = true;
    }
    Napi::Int32Array out = Napi::Int32Array::New(a.env(), 3 * n + 1);
    for (int64_t t = 0; t < n; t++) {
      // size_t indices: an int64_t one is ambiguous between TypedArrayOf's operator[] and the pointer conversion.
      const size_t at = static_cast<size_t>(3 * t);
      out[at] = runs[t].load();
      out[at + 1] = tid_of[t];
      out[at + 2] = order[t];
    }
    out[static_cast<size_t>(3 * n)] = threw ? 1 : 0;
    return out;
  });

  // storageAlignment(t) -> the largest power of two, up to 4096, that divides the address of t's first element
  // (Storage aligns owned host storage to kHostAlign; a test checks it holds, fresh and from the block cache).
  CLOZE_EXPORT(exports, "storageAlignment", [](const ArgReader& a) -> Napi::Value {
    const uintptr_t addr = reinterpret_cast<uintptr_t>(a.tensor(0, "t")->raw());
    uintptr_t align = 1;
    while (align < 4096 && addr % (align * 2) == 0) align *= 2;
    return Napi::Number::New(a.env(), static_cast<double>(align));
  });

  // releaseFreeMemory() -> whether the C library could do it (glibc's malloc_trim).
  // Freed tensors can stay cached in the heap; an RSS baseline taken after this
  // call does not count them.
  CLOZE_EXPORT(exports, "releaseFreeMemory", [](const ArgReader& a) -> Napi::Value {
#if defined(__GLIBC__)
    malloc_trim(0);
    return Napi::Boolean::New(a.env(), true);
#else
    return Napi::Boolean::New(a.env(), false);
#endif
  });
}

}  // namespace cloze
