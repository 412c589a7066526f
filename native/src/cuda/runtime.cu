// Streams, transfers, device facts and the error path (see runtime.h).
#include <cuda_runtime.h>

#include <cstring>
#include <mutex>
#include <string>

#include "../core/error.h"
#include "runtime.h"

namespace cloze {
namespace cuda {

namespace {
// The per-process default stream, created on first use. Non-blocking, so it
// never serializes against the legacy NULL stream that other libraries may use.
Stream g_default = nullptr;
Stream g_current = nullptr;
std::mutex g_stream_mu;

Stream default_stream() {
  std::lock_guard<std::mutex> lk(g_stream_mu);
  if (!g_default) {
    cudaStream_t s = nullptr;
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cuda.stream", "cudaStreamCreateWithFlags");
    g_default = s;
  }
  return g_default;
}
}  // namespace

void check(int err, const char* op, const char* what) {
  if (err == cudaSuccess) return;
  const cudaError_t e = static_cast<cudaError_t>(err);
  // Clear a non-sticky error so the next call does not report it again.
  cudaGetLastError();
  const ErrCode code = e == cudaErrorMemoryAllocation ? ErrCode::OOM : ErrCode::Cuda;
  fail(code, op, std::string(what) + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

void check_launch(const char* op) { check(cudaGetLastError(), op, "kernel launch"); }

bool available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA device is visible";
    return false;
  }
  return true;
}

Stream stream() {
  if (g_current) return g_current;
  return default_stream();
}

void set_stream(Stream s, const char* op) {
  Stream prev = stream();
  if (prev == (s ? s : default_stream())) return;
  // The allocator recycles blocks per stream; waiting here means no block
  // freed under the old stream can still be in use when the new one runs.
  check(cudaStreamSynchronize(prev), op, "cudaStreamSynchronize");
  g_current = s;
}

bool stream_idle(const char* op) {
  const cudaError_t e = cudaStreamQuery(stream());
  if (e == cudaErrorNotReady) return false;
  check(e, op, "cudaStreamQuery");
  return true;
}

int select_device(int local_rank, const char* op) {
  int n = 0;
  check(cudaGetDeviceCount(&n), op, "cudaGetDeviceCount");
  if (n <= 0) fail(ErrCode::Device, op, "Expected a CUDA device for local rank " + std::to_string(local_rank) + " but received none visible");
  const int dev = (local_rank < 0 ? 0 : local_rank) % n;
  check(cudaSetDevice(dev), op, "cudaSetDevice");
  return dev;
}

Stream create_stream(const char* op) {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), op, "cudaStreamCreateWithFlags");
  return s;
}

void destroy_stream(Stream s, const char* op) {
  if (!s) return;
  check(cudaStreamSynchronize(s), op, "cudaStreamSynchronize");
  if (g_current == s) g_current = nullptr;
  check(cudaStreamDestroy(s), op, "cudaStreamDestroy");
}

void synchronize(const char* op) {
  check(cudaStreamSynchronize(stream()), op, "cudaStreamSynchronize");
  raise_deferred(op);
}

void memset_zero(void* p, size_t bytes, const char* op) {
  if (bytes == 0) return;
  check(cudaMemsetAsync(p, 0, bytes, stream()), op, "cudaMemsetAsync");
}

namespace {

// Small uploads go through pinned staging slots, so that they need no wait.
// A copy from pageable memory makes the stream drain first (CUDA stages it
// itself, and we must not let the host reuse the source early): a step's
// token ids, targets or masked-row index uploaded between kernels then held
// the host until every kernel queued so far had run. Here the source is
// copied into a pinned slot on the host and the slot is copied from
// asynchronously; an event per slot says when the slot may be written again,
// kStageSlots uploads later. So the host may run at most that many uploads
// ahead of the device (with cuSeqlens uploaded by each packed attention call,
// a few layers) before it waits for the oldest; the device still has those
// layers queued then, so the wait bounds how far ahead the host runs, not
// the device's throughput. (Unmeasured: the last GPU run predates staging.)
constexpr int kStageSlots = 8;
constexpr size_t kStageBytes = size_t(1) << 20;  // larger uploads take the waiting path

struct Staging {
  std::mutex mu;
  char* buf = nullptr;  // kStageSlots × kStageBytes, pinned
  cudaEvent_t done[kStageSlots] = {};
  int next = 0;
  bool failed = false;  // no pinned memory (or events): every upload takes the waiting path
};

Staging& staging() {
  static Staging* s = new Staging();  // never destroyed: the driver frees it at exit
  return *s;
}

// Uploads through a staging slot; false when staging is unavailable (the caller then waits).
bool staged_upload(void* dst, const void* src, size_t bytes, const char* op) {
  if (bytes > kStageBytes) return false;
  Staging& S = staging();
  std::lock_guard<std::mutex> lk(S.mu);
  if (S.failed) return false;
  if (!S.buf) {
    void* p = nullptr;
    if (cudaHostAlloc(&p, kStageSlots * kStageBytes, cudaHostAllocPortable) != cudaSuccess) {
      cudaGetLastError();
      S.failed = true;
      return false;
    }
    for (int i = 0; i < kStageSlots; i++) {
      if (cudaEventCreateWithFlags(&S.done[i], cudaEventDisableTiming) != cudaSuccess) {
        cudaGetLastError();
        S.failed = true;
        return false;
      }
    }
    S.buf = static_cast<char*>(p);
  }
  const int slot = S.next;
  S.next = (S.next + 1) % kStageSlots;
  char* stage = S.buf + static_cast<size_t>(slot) * kStageBytes;
  check(cudaEventSynchronize(S.done[slot]), op, "cudaEventSynchronize (upload staging)");  // its last copy is done
  std::memcpy(stage, src, bytes);
  check(cudaMemcpyAsync(dst, stage, bytes, cudaMemcpyHostToDevice, stream()), op, "cudaMemcpyAsync");
  check(cudaEventRecord(S.done[slot], stream()), op, "cudaEventRecord (upload staging)");
  return true;
}

}  // namespace

void copy(void* dst, bool dst_device, const void* src, bool src_device, size_t bytes, const char* op) {
  if (bytes == 0) return;
  if (dst_device && !src_device && staged_upload(dst, src, bytes, op)) return;
  cudaMemcpyKind kind = dst_device ? (src_device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                   : (src_device ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  check(cudaMemcpyAsync(dst, src, bytes, kind, stream()), op, "cudaMemcpyAsync");
  // Host memory is pageable (JS buffers, the CPU cache): the host side must
  // not change or read it before the copy has happened.
  if (!dst_device || !src_device) check(cudaStreamSynchronize(stream()), op, "cudaStreamSynchronize");
  // What the host reads must not come from an op given a bad index: report it first.
  if (!dst_device && src_device) raise_deferred(op);
}

DeviceInfo device_info(const char* op) {
  int dev = 0;
  check(cudaGetDevice(&dev), op, "cudaGetDevice");
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, dev), op, "cudaGetDeviceProperties");
  DeviceInfo d;
  d.name = p.name;
  d.major = p.major;
  d.minor = p.minor;
  d.sms = p.multiProcessorCount;
  d.memory_bytes = static_cast<int64_t>(p.totalGlobalMem);
  d.l2_bytes = p.l2CacheSize;
  d.smem_optin_bytes = static_cast<int64_t>(p.sharedMemPerBlockOptin);
  check(cudaDriverGetVersion(&d.driver_version), op, "cudaDriverGetVersion");
  check(cudaRuntimeGetVersion(&d.runtime_version), op, "cudaRuntimeGetVersion");
  return d;
}

}  // namespace cuda
}  // namespace cloze
