// NCCL for data-parallel training on cuda: the gradient all-reduce of the
// cuda addon, with MPI only carrying the unique id from rank 0 to the others.
//
// Loaded at run time: the first call dlopen()s libnccl.so.2, so the cuda addon
// has no link-time dependency on NCCL and builds (and runs single-GPU) where
// it is not installed; ncclAvailable() then says why it is missing. No nccl.h
// is needed either: the few types and functions used are declared below.
//
// The CPU addon compiles this file without CLOZE_CUDA: every entry throws
// "NCCL needs the cuda addon", and ncclAvailable() reports it as not built.
#include <string>

#include "bindings.h"

#ifdef CLOZE_CUDA
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>
#include <type_traits>

#include "../cuda/runtime.h"
#endif

namespace cloze {

namespace {

[[maybe_unused]] const char* kNeedsCuda = "NCCL needs the cuda addon (this is the CPU addon; build it with npm run build:cuda)";

#ifdef CLOZE_CUDA

// NCCL 2.x's public C API (nccl.h), declared here so that the build needs no NCCL headers. These are ABI-stable
// across NCCL 2.x: ncclUniqueId is 128 opaque bytes passed by value, the enums' values below are nccl.h's, and
// the functions are C symbols with these signatures since NCCL 2.0 (ncclCommGetAsyncError since 2.4,
// ncclGetVersion's encoding changed at 2.9, see version_string).
using ncclComm_t = struct ncclComm*;
constexpr int kUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
struct ncclUniqueId {
  char internal[kUniqueIdBytes];
};
using ncclResult_t = int;              // ncclSuccess = 0, ncclInProgress = 7
constexpr ncclResult_t kNcclSuccess = 0;
constexpr ncclResult_t kNcclInProgress = 7;
using ncclDataType_t = int;            // ncclFloat32 = 7, ncclBfloat16 = 9
constexpr ncclDataType_t kNcclFloat32 = 7;
constexpr ncclDataType_t kNcclBfloat16 = 9;
using ncclRedOp_t = int;               // ncclSum = 0
constexpr ncclRedOp_t kNcclSum = 0;

struct Nccl {
  void* lib = nullptr;
  std::string error;  // dlopen's or dlsym's message when lib could not be used
  ncclResult_t (*GetVersion)(int*) = nullptr;
  ncclResult_t (*GetUniqueId)(ncclUniqueId*) = nullptr;
  ncclResult_t (*CommInitRank)(ncclComm_t*, int, ncclUniqueId, int) = nullptr;
  ncclResult_t (*AllReduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cuda::Stream) = nullptr;
  ncclResult_t (*CommDestroy)(ncclComm_t) = nullptr;
  ncclResult_t (*CommAbort)(ncclComm_t) = nullptr;
  const char* (*GetErrorString)(ncclResult_t) = nullptr;
  ncclResult_t (*CommGetAsyncError)(ncclComm_t, ncclResult_t*) = nullptr;
};

// Opened once, on first use (the JS thread is the only caller).
Nccl& nccl() {
  static Nccl n;
  static bool tried = false;
  if (tried) return n;
  tried = true;
  const char* lib_name = "libnccl.so.2";
  void* h = dlopen(lib_name, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    n.error = std::string("dlopen(\"") + lib_name + "\") failed: " + (e ? e : "unknown error");
    return n;
  }
  bool ok = true;
  auto sym = [&](auto& fn, const char* name) {
    void* p = dlsym(h, name);
    if (!p) {
      if (ok) n.error = std::string(lib_name) + " has no symbol " + name + " (an NCCL older than 2.4?)";
      ok = false;
      return;
    }
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
  };
  sym(n.GetVersion, "ncclGetVersion");
  sym(n.GetUniqueId, "ncclGetUniqueId");
  sym(n.CommInitRank, "ncclCommInitRank");
  sym(n.AllReduce, "ncclAllReduce");
  sym(n.CommDestroy, "ncclCommDestroy");
  sym(n.CommAbort, "ncclCommAbort");
  sym(n.GetErrorString, "ncclGetErrorString");
  sym(n.CommGetAsyncError, "ncclCommGetAsyncError");
  if (!ok) {
    dlclose(h);
    return n;
  }
  n.lib = h;
  return n;
}

// "2.21.5": ncclGetVersion's code is major*10000 + minor*100 + patch since 2.9, major*1000 + minor*100 + patch before.
std::string version_string(int code) {
  const bool wide = code >= 10000;
  const int major = wide ? code / 10000 : code / 1000;
  const int minor = wide ? (code % 10000) / 100 : (code % 1000) / 100;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(code % 100);
}

Nccl& want_nccl(const ArgReader& a) {
  Nccl& n = nccl();
  if (!n.lib) fail(ErrCode::Value, a.op, "Expected NCCL to be loadable for a cuda all-reduce but received: " + n.error);
  return n;
}

void check(Nccl& n, ncclResult_t rc, const ArgReader& a, const std::string& what) {
  if (rc != kNcclSuccess) fail(ErrCode::Cuda, a.op, what + " failed: " + n.GetErrorString(rc) + " (ncclResult_t " + std::to_string(rc) + ")");
}

// Communicators by handle, with their rank and size for messages.
struct Comm {
  ncclComm_t comm = nullptr;
  int rank = 0, size = 1;
};
std::map<int64_t, Comm> g_comms;
int64_t g_next = 1;

Comm& want_comm(const ArgReader& a, size_t i) {
  const int64_t h = a.integer(i, "comm", 1, int64_t(1) << 53);
  auto it = g_comms.find(h);
  if (it == g_comms.end()) a.bad(ErrCode::Value, "the handle of a live NCCL communicator", "comm", std::to_string(h));
  return it->second;
}

std::string where(const Comm& c) { return " on rank " + std::to_string(c.rank) + " of " + std::to_string(c.size); }

#endif

}  // namespace

void register_nccl(Napi::Env env, Napi::Object exports) {
  (void)env;
  // ncclAvailable() → { built, available, reason, version }: built is false in the CPU addon; otherwise whether
  // libnccl.so.2 loads (reason: dlopen's message) and its version.
  CLOZE_EXPORT(exports, "ncclAvailable", [](const ArgReader& a) -> Napi::Value {
    Napi::Object o = Napi::Object::New(a.env());
#ifdef CLOZE_CUDA
    Nccl& n = nccl();
    int code = 0;
    const bool ok = n.lib && n.GetVersion(&code) == kNcclSuccess;
    o.Set("built", true);
    o.Set("available", ok);
    o.Set("reason", ok ? std::string() : n.lib ? std::string("ncclGetVersion failed") : n.error);
    o.Set("version", ok ? version_string(code) : std::string());
#else
    o.Set("built", false);
    o.Set("available", false);
    o.Set("reason", kNeedsCuda);
    o.Set("version", "");
#endif
    return o;
  });

  // ncclGetUniqueId() → Uint8Array(128): rank 0 makes it, MPI broadcasts it to the others.
  CLOZE_EXPORT(exports, "ncclGetUniqueId", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    Nccl& n = want_nccl(a);
    ncclUniqueId id;
    check(n, n.GetUniqueId(&id), a, "ncclGetUniqueId");
    Napi::Uint8Array out = Napi::Uint8Array::New(a.env(), kUniqueIdBytes);
    std::memcpy(out.Data(), id.internal, kUniqueIdBytes);
    return out;
#else
    fail(ErrCode::Device, a.op, kNeedsCuda);
#endif
  });

  // ncclCommInitRank(id: Uint8Array(128), rank, size, localRank) → handle. Selects device localRank % count
  // first (so it must come before the model is placed), then joins the communicator: blocks until all `size`
  // ranks have called it with the same id.
  CLOZE_EXPORT(exports, "ncclCommInitRank", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    Nccl& n = want_nccl(a);
    if (a.info.Length() < 1 || !a.info[0].IsTypedArray() || a.info[0].As<Napi::TypedArray>().ByteLength() != kUniqueIdBytes) {
      a.bad(ErrCode::Value, "a typed array of 128 bytes (ncclGetUniqueId's)", "id", a.info.Length() ? a.describe(a.info[0]) : "nothing");
    }
    Napi::TypedArray ta = a.info[0].As<Napi::TypedArray>();
    const int size = static_cast<int>(a.integer(2, "size", 1, INT32_MAX));
    const int rank = static_cast<int>(a.integer(1, "rank", 0, size - 1));
    const int local_rank = static_cast<int>(a.integer(3, "localRank", 0, INT32_MAX));
    cuda::select_device(local_rank, a.op);
    ncclUniqueId id;
    std::memcpy(id.internal, static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), kUniqueIdBytes);
    Comm c;
    c.rank = rank;
    c.size = size;
    check(n, n.CommInitRank(&c.comm, size, id, rank), a, "ncclCommInitRank" + where(c));
    const int64_t h = g_next++;
    g_comms.emplace(h, c);
    return Napi::Number::New(a.env(), static_cast<double>(h));
#else
    fail(ErrCode::Device, a.op, kNeedsCuda);
#endif
  });

  // ncclAllReduce(comm, t): in-place SUM over the ranks of a cuda float32 or bfloat16 tensor, queued on the
  // trainer's current stream (cuda::stream()), after the backward that wrote it. Returns at once; ncclWait bounds it.
  CLOZE_EXPORT(exports, "ncclAllReduce", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    Nccl& n = want_nccl(a);
    Comm& c = want_comm(a, 0);
    NTensor* t = a.tensor(1, "input");
    if (!t->on_cuda()) a.bad(ErrCode::Device, "a cuda tensor (NCCL reduces device memory; CPU tensors go through MPI)", "input", tensor_desc(t));
    if (t->dtype() != DType::F32 && t->dtype() != DType::BF16) a.bad(ErrCode::Dtype, "a float32 or bfloat16 tensor", "input", tensor_desc(t));
    void* p = t->raw();
    check(n, n.AllReduce(p, p, static_cast<size_t>(t->numel()), t->dtype() == DType::F32 ? kNcclFloat32 : kNcclBfloat16, kNcclSum, c.comm, cuda::stream()), a,
          "ncclAllReduce of " + tensor_desc(t) + where(c));
    return a.env().Undefined();
#else
    fail(ErrCode::Device, a.op, kNeedsCuda);
#endif
  });

  // ncclWait(comm, timeoutMs): polls the current stream until the queued all-reduces (and everything before
  // them) have run, checking the communicator's asynchronous error; throws naming the bound when a peer died or
  // stalled (the caller then aborts the communicator and the job), instead of blocking in a read forever.
  CLOZE_EXPORT(exports, "ncclWait", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    Nccl& n = want_nccl(a);
    Comm& c = want_comm(a, 0);
    const double timeout_ms = a.number(1, "timeoutMs");
    if (!(timeout_ms > 0)) a.bad(ErrCode::Value, "a positive number of milliseconds", "timeoutMs", a.describe(a.info[1]));
    const auto t0 = std::chrono::steady_clock::now();
    int sleep_us = 1;
    for (;;) {
      if (cuda::stream_idle(a.op)) break;
      ncclResult_t async = kNcclSuccess;
      check(n, n.CommGetAsyncError(c.comm, &async), a, "ncclCommGetAsyncError" + where(c));
      if (async != kNcclSuccess && async != kNcclInProgress) {
        fail(ErrCode::Cuda, a.op, std::string("the NCCL all-reduce failed") + where(c) + ": " + n.GetErrorString(async));
      }
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (ms > timeout_ms) {
        fail(ErrCode::Internal, a.op, "the NCCL all-reduce did not complete within " + std::to_string(static_cast<int64_t>(timeout_ms)) + " ms" + where(c) +
                                          ": another rank died or stalled");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
      sleep_us = std::min(sleep_us * 2, 1000);
    }
    return a.env().Undefined();
#else
    fail(ErrCode::Device, a.op, kNeedsCuda);
#endif
  });

  // ncclCommDestroy(comm): after its work completed (the normal end of a run).
  CLOZE_EXPORT(exports, "ncclCommDestroy", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    Nccl& n = want_nccl(a);
    Comm c = want_comm(a, 0);
    g_comms.erase(static_cast<int64_t>(a.integer(0, "comm", 1, int64_t(1) << 53)));
    check(n, n.CommDestroy(c.comm), a, "ncclCommDestroy" + where(c));
    return a.env().Undefined();
#else
    fail(ErrCode::Device, a.op, kNeedsCuda);
#endif
  });

  // ncclCommAbort(comm): ends the communicator's pending work without waiting for the peers (a failed run).
  CLOZE_EXPORT(exports, "ncclCommAbort", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_CUDA
    Nccl& n = want_nccl(a);
    Comm c = want_comm(a, 0);
    g_comms.erase(static_cast<int64_t>(a.integer(0, "comm", 1, int64_t(1) << 53)));
    check(n, n.CommAbort(c.comm), a, "ncclCommAbort" + where(c));
    return a.env().Undefined();
#else
    fail(ErrCode::Device, a.op, kNeedsCuda);
#endif
  });
}

}  // namespace cloze
