// Native memory behind tensors. A Storage is shared (by views, by zero-copy
// TypedArray views handed to JS) and freed when its last holder lets go, so a
// JS view can never outlive the bytes it points at.
//
// Blocks of 128 KiB and more go through a small cache: a training step frees
// and re-allocates the same large activations every step, and handing them
// back to the OS each time costs a page fault per 4 KiB on the next step.
// 128 KiB is glibc's initial mmap threshold: below it, malloc serves blocks
// from its heaps. Left to glibc, blocks between that and a 1 MiB cutoff were
// mapped and unmapped each step, and once glibc raised its threshold, served
// from a heap it trimmed each step: SparK's sparse step took ~2,000 faults
// and 40 → 52 ms after a masked-dense step had run in the process.
// Cached blocks are rounded up to a multiple of 128 KiB (a 129 KiB tensor holds
// 256 KiB), and a request takes a cached block at most a quarter larger.
//
// Owned host storage starts on a 64-byte boundary (kHostAlign), a cache line
// and an AVX-512 vector: glibc's malloc gives 16, and its large (mmap) blocks
// start 16 bytes past a page, so every vector a kernel read from the start of a
// row was split over two cache lines, and rows written by different threads
// (attention's heads in [B, L, H, Dh]) shared the lines at their ends. Borrowed
// storage (a JS TypedArray's bytes) keeps its own alignment; no kernel needs
// more than the element's.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dtype.h"

namespace cloze {

// Alignment of owned host Storage data, bytes.
constexpr size_t kHostAlign = 64;

class Storage {
 public:
  // Allocates `bytes`, zero-filled unless zero is false (for outputs a kernel
  // writes in full); throws OpError(E_OOM) on failure. CUDA storage comes from
  // the caching device allocator (cuda/runtime.h) and exists only in the cuda
  // addon; asking the CPU addon for it throws E_DEVICE.
  static std::shared_ptr<Storage> allocate(size_t bytes, const char* op, bool zero = true, Device dev = Device::CPU);
  // Wraps memory owned elsewhere (a JS ArrayBuffer); `release` runs on destruction.
  static std::shared_ptr<Storage> borrow(void* data, size_t bytes, std::function<void()> release);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  bool owned() const { return owned_; }
  Device device() const { return device_; }

  // Bytes of native memory owned by live Storages in this process.
  static int64_t live_bytes();
  // Bytes held by the block cache for reuse (not live).
  static int64_t cached_bytes();
  // Frees every cached block.
  static void release_cache();
  // Caps the cache; 0 disables it. Shrinks it at once if needed.
  static void set_cache_limit(size_t bytes);
  // Throws OpError(E_OOM) naming op when `bytes` of host memory is more than
  // this process may have: the machine's physical memory, or less where a
  // cgroup (v2 memory.max, v1 memory.limit_in_bytes) caps the process, as in
  // containers. Allocation checks it; bindings call it first for scratch they
  // size from arguments, so nothing is allocated before the request is known
  // to be possible.
  static void check_request(size_t bytes, const char* op);
  // The cap check_request applies, and where it comes from ("physical memory"
  // or the cgroup file read). Read once; CLOZE_CGROUP_ROOT (tests) replaces
  // /sys/fs/cgroup and makes that directory the process's own cgroup.
  static size_t memory_limit();
  static const std::string& memory_limit_source();

 private:
  Storage() = default;
  void* data_ = nullptr;
  void* base_ = nullptr;  // what malloc/calloc returned (owned host storage); data_ is it rounded up to kHostAlign
  size_t bytes_ = 0;
  size_t capacity_ = 0;
  bool owned_ = false;
  Device device_ = Device::CPU;
  std::function<void()> release_;
};

}  // namespace cloze
