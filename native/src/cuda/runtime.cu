// Streams, transfers, device facts and the error path (see runtime.h).
#include <cuda_runtime.h>

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

void copy(void* dst, bool dst_device, const void* src, bool src_device, size_t bytes, const char* op) {
  if (bytes == 0) return;
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
