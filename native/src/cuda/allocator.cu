// The caching device allocator. A training step frees and re-allocates the
// same activation sizes every step; cudaMalloc/cudaFree each time would
// synchronize the device and cost far more than the kernels. Freed blocks go
// to a per-stream pool keyed by size and are handed out again in stream order,
// so reuse needs no synchronization (the stream runs the old reader first).
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "../core/error.h"
#include "runtime.h"

namespace cloze {
namespace cuda {

namespace {

constexpr size_t kSmallRound = 512;          // small requests round to 512 B
constexpr size_t kLargeMin = size_t(1) << 20;
constexpr size_t kLargeRound = size_t(2) << 20;  // large ones to 2 MiB

size_t round_size(size_t bytes) {
  if (bytes == 0) return kSmallRound;
  if (bytes < kLargeMin) return (bytes + kSmallRound - 1) / kSmallRound * kSmallRound;
  return (bytes + kLargeRound - 1) / kLargeRound * kLargeRound;
}

struct Block {
  size_t size;
  Stream stream;
};

struct Pool {
  std::mutex mu;
  std::unordered_map<void*, Block> live;                 // ptr → block
  std::map<Stream, std::multimap<size_t, void*>> free;   // per stream, by size
  MemStats stats;

  void* take(size_t size, Stream s) {
    auto fs = free.find(s);
    if (fs == free.end()) return nullptr;
    auto it = fs->second.lower_bound(size);
    // A cached block may be up to a quarter larger than asked; the rest is waste.
    if (it == fs->second.end() || it->first > size + size / 4) return nullptr;
    void* p = it->second;
    stats.cached_bytes -= static_cast<int64_t>(it->first);
    live[p] = Block{it->first, s};
    fs->second.erase(it);
    return p;
  }

  // Caller holds mu and has synchronized the device.
  void release_all(const char* op) {
    for (auto& kv : free)
      for (auto& b : kv.second) check(cudaFree(b.second), op, "cudaFree");
    free.clear();
    stats.cached_bytes = 0;
  }
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: the driver frees device memory at exit
  return *p;
}

}  // namespace

void* alloc(size_t bytes, const char* op) {
  const size_t size = round_size(bytes);
  const Stream s = stream();
  Pool& P = pool();
  std::lock_guard<std::mutex> lk(P.mu);
  if (void* p = P.take(size, s)) {
    // The block's own size, which may exceed the request by a quarter: free()
    // subtracts that size, and counting the request here drove live_bytes
    // (and the benches' peaks) below zero on the H200.
    P.stats.live_bytes += static_cast<int64_t>(P.live[p].size);
    if (P.stats.live_bytes > P.stats.peak_bytes) P.stats.peak_bytes = P.stats.live_bytes;
    return p;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    // Give the cached blocks back and try once more.
    check(cudaDeviceSynchronize(), op, "cudaDeviceSynchronize");
    P.release_all(op);
    e = cudaMalloc(&p, size);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail(e == cudaErrorMemoryAllocation ? ErrCode::OOM : ErrCode::Internal, op,
         "could not allocate " + std::to_string(bytes) + " bytes of GPU memory (" + cudaGetErrorString(e) +
             "; tensors hold " + std::to_string(P.stats.live_bytes) + " bytes, the device has " +
             std::to_string(free_b) + " of " + std::to_string(total_b) + " bytes free)");
  }
  P.stats.malloc_calls++;
  P.live[p] = Block{size, s};
  P.stats.live_bytes += static_cast<int64_t>(size);
  if (P.stats.live_bytes > P.stats.peak_bytes) P.stats.peak_bytes = P.stats.live_bytes;
  return p;
}

void free(void* p) {
  if (!p) return;
  Pool& P = pool();
  std::lock_guard<std::mutex> lk(P.mu);
  auto it = P.live.find(p);
  if (it == P.live.end()) return;  // not ours: nothing to do (never throws from a destructor)
  const Block b = it->second;
  P.live.erase(it);
  P.stats.live_bytes -= static_cast<int64_t>(b.size);
  P.free[b.stream].emplace(b.size, p);
  P.stats.cached_bytes += static_cast<int64_t>(b.size);
}

MemStats mem_stats() {
  Pool& P = pool();
  std::lock_guard<std::mutex> lk(P.mu);
  return P.stats;
}

void release_cache(const char* op) {
  Pool& P = pool();
  std::lock_guard<std::mutex> lk(P.mu);
  check(cudaDeviceSynchronize(), op, "cudaDeviceSynchronize");
  P.release_all(op);
}

void reset_peak() {
  Pool& P = pool();
  std::lock_guard<std::mutex> lk(P.mu);
  P.stats.peak_bytes = P.stats.live_bytes;
}

}  // namespace cuda
}  // namespace cloze
