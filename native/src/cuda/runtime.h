// The CUDA runtime of the cuda addon: the current stream, the caching device
// allocator, transfers, and the error path. Host-only declarations: this
// header names no CUDA type beyond the opaque stream handle, so bindings
// compiled by the host compiler can include it.
//
// Streams: every kernel launches on stream(), asynchronously. A trainer makes
// its own stream and makes it current; set_stream() synchronizes the previous
// stream first, so a block freed on one stream is never reused by another
// while a kernel may still read it.
//
// Errors: every CUDA call is checked; a failure throws OpError naming the op,
// so the process never exits. A kernel fault surfaces at the next synchronizing
// call (a read, a sync) with the op that noticed it and the CUDA message; so
// does a bad device index (check_indices_deferred below), naming the op it was
// given to.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

struct CUstream_st;

namespace cloze {
namespace cuda {

using Stream = CUstream_st*;

// Whether a CUDA device can be used; `why` says what is missing otherwise.
bool available(std::string* why);

Stream stream();                          // the current stream (a per-process default until set)
void set_stream(Stream s, const char* op);  // nullptr restores the default
Stream create_stream(const char* op);
void destroy_stream(Stream s, const char* op);
void synchronize(const char* op);         // waits for the current stream
// Whether everything queued on the current stream has run (cudaStreamQuery), without waiting: lets a
// collective on the stream (NCCL) be waited on with a time bound. A failed kernel throws.
bool stream_idle(const char* op);
// Data parallel: rank `local_rank` of a node takes device local_rank % device count (cudaSetDevice), before
// anything is allocated; returns the device index.
int select_device(int local_rank, const char* op);

// Stream-ordered caching allocator: no cudaMalloc per step. Blocks are
// recycled on the stream that allocated them; cudaMalloc failure empties the
// cache and retries before throwing E_OOM.
void* alloc(size_t bytes, const char* op);
void free(void* p);
void memset_zero(void* p, size_t bytes, const char* op);  // async on stream()
// Copies between host and device or within the device. Host-to-device and
// device-to-device are stream-ordered; device-to-host waits for the data.
// Uploads up to 1 MiB go through pinned staging and do not wait (the source
// may be reused at once); larger ones wait for the stream.
void copy(void* dst, bool dst_device, const void* src, bool src_device, size_t bytes, const char* op);

struct MemStats {
  int64_t live_bytes = 0;     // held by tensors
  int64_t cached_bytes = 0;   // free blocks kept for reuse
  int64_t peak_bytes = 0;     // most live bytes seen
  int64_t malloc_calls = 0;   // cudaMalloc calls made (a steady step makes none)
};
MemStats mem_stats();
void release_cache(const char* op);       // synchronizes, then cudaFree's every cached block
void reset_peak();

struct DeviceInfo {
  std::string name;
  int major = 0, minor = 0;       // compute capability
  int sms = 0;
  int64_t memory_bytes = 0;
  int64_t l2_bytes = 0;
  int64_t smem_optin_bytes = 0;   // per block, after cudaFuncSetAttribute
  int driver_version = 0, runtime_version = 0;
};
DeviceInfo device_info(const char* op);

// Throws OpError(E_CUDA, or E_OOM, op, "<what> failed: <CUDA error>") when err != 0.
void check(int err, const char* op, const char* what);
// After a launch: picks up launch-configuration errors at once.
void check_launch(const char* op);

// Deferred index checks (deferred_check.cu): queues a kernel that checks
// ids[0, n) against [0, hi) (allowing `special` when allow_special) and
// records the lowest bad position; nothing waits. raise_deferred() reads the
// record (it waits for the stream) and throws the earliest failed check's
// E_INDEX error, worded as the host check, its message naming `op` and
// `name` (the JS error's `op` field is the call that found it).
// synchronize() and every device-to-host copy call it, so a bad index
// surfaces at the next read. The ops given such indices must skip them.
void check_indices_deferred(const int32_t* ids, int64_t n, int64_t hi, bool allow_special, int32_t special,
                            const char* op, const char* name);
void raise_deferred(const char* op);

// dst[i] = value, for any dtype (value converted as by a cast).
void fill(void* dst, int dtype, int64_t n, double value, const char* op);
// Converts n elements between dtypes on the device (float32, float64, int32, uint8, bfloat16).
void cast(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n, const char* op);

}  // namespace cuda
}  // namespace cloze
