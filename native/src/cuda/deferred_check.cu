// Deferred index checks (issue 21). Checking a device index tensor on the host
// meant copying it there: a synchronization in every embedding call, which
// stopped the host from queueing the next kernels while the device drained.
// Here a kernel checks the indices where they are and records the first
// offender; the record is read at the next point that waits for the device
// anyway (a read of a tensor, a synchronize), and the error is thrown there,
// worded as the host check words it and naming the op that was given the bad
// index. The ops themselves never touch memory out of range for a bad index
// (the kernels skip it), so nothing between the call and the report is
// corrupted; their outputs are simply not to be used.
//
// One record slot per check since the last read: the slot holds
// min over bad positions i of (i << 32 | uint32(value)), by atomicMin, so the
// lowest bad position wins whatever the schedule, and its value comes with it.
// The earliest check with an offender is the one reported.
#include <cuda_runtime.h>

#include <climits>
#include <mutex>
#include <string>
#include <vector>

#include "../core/error.h"
#include "common.cuh"
#include "runtime.h"

namespace cloze {
namespace cuda {

namespace {

constexpr int kSlots = 512;  // checks between two reads; a full table is read early
constexpr unsigned long long kClean = ULLONG_MAX;

struct Site {
  std::string op, name;
  int64_t hi;
  bool allow_special;
  int32_t special;
};

struct Record {
  std::mutex mu;
  unsigned long long* dev = nullptr;  // kSlots keys, kClean when no offender
  std::vector<Site> sites;            // the checks queued since the last read, in order
};

Record& record() {
  static Record* r = new Record();  // never destroyed: the driver frees device memory at exit
  return *r;
}

__global__ void check_indices_kernel(const int32_t* ids, int64_t n, int64_t hi, bool allow_special, int32_t special,
                                     unsigned long long* slot) {
  CLOZE_GRID_STRIDE(i, n) {
    const int32_t v = ids[i];
    if (allow_special && v == special) continue;
    if (v < 0 || static_cast<int64_t>(v) >= hi)
      atomicMin(slot, (static_cast<unsigned long long>(i) << 32) | static_cast<uint32_t>(v));
  }
}

// Reads and clears the record; throws the earliest failed check. Caller holds mu.
void read_locked(Record& R, const char* op) {
  if (R.sites.empty()) return;
  const size_t n = R.sites.size();
  std::vector<unsigned long long> keys(n);
  // Not copy(): that reads the record itself (and pageable memory needs the wait anyway).
  check(cudaMemcpyAsync(keys.data(), R.dev, n * sizeof(unsigned long long), cudaMemcpyDeviceToHost, stream()), op,
        "cudaMemcpyAsync (deferred index checks)");
  check(cudaStreamSynchronize(stream()), op, "cudaStreamSynchronize");
  // The slots are cleared before the list is, so a failed reset leaves both as they were (read again next time).
  check(cudaMemsetAsync(R.dev, 0xff, n * sizeof(unsigned long long), stream()), op, "cudaMemsetAsync");
  std::vector<Site> sites;
  sites.swap(R.sites);
  for (size_t s = 0; s < n; s++) {
    if (keys[s] == kClean) continue;
    const Site& w = sites[s];
    const int64_t pos = static_cast<int64_t>(keys[s] >> 32);
    const int32_t val = static_cast<int32_t>(static_cast<uint32_t>(keys[s] & 0xffffffffull));
    fail(ErrCode::Index, w.op,
         expected("indices in [0, " + std::to_string(w.hi) + ")" +
                      (w.allow_special ? " or the ignore index " + std::to_string(w.special) : std::string()),
                  w.name, std::to_string(val) + " at position " + std::to_string(pos)) +
             " (found on the device; reported at the next read or synchronize)");
  }
}

}  // namespace

void check_indices_deferred(const int32_t* ids, int64_t n, int64_t hi, bool allow_special, int32_t special,
                            const char* op, const char* name) {
  if (n <= 0) return;
  if (n > INT32_MAX) fail(ErrCode::Shape, op, std::string("more than 2^31 - 1 indices in ") + name);
  Record& R = record();
  std::lock_guard<std::mutex> lk(R.mu);
  if (!R.dev) {
    void* p = nullptr;
    check(cudaMalloc(&p, kSlots * sizeof(unsigned long long)), op, "cudaMalloc (deferred index checks)");
    R.dev = static_cast<unsigned long long*>(p);
    check(cudaMemsetAsync(R.dev, 0xff, kSlots * sizeof(unsigned long long), stream()), op, "cudaMemsetAsync");
  }
  if (R.sites.size() == static_cast<size_t>(kSlots)) read_locked(R, op);  // full: read now (rare)
  unsigned long long* slot = R.dev + R.sites.size();
  R.sites.push_back(Site{op, name, hi, allow_special, special});
  CLOZE_LAUNCH(op, check_indices_kernel, blocks_for(n), kThreads, 0, ids, n, hi, allow_special, special, slot);
}

void raise_deferred(const char* op) {
  Record& R = record();
  std::lock_guard<std::mutex> lk(R.mu);
  read_locked(R, op);
}

}  // namespace cuda
}  // namespace cloze
