// Argument reading and checking for op bindings. Every check throws OpError
// with the wording "Expected … for <name> but received …".
#pragma once
#include <napi.h>

#include <string>
#include <type_traits>
#include <memory>
#include <vector>

#include "../core/error.h"
#include "tensor_object.h"

namespace cloze {

struct ArgReader {
  const Napi::CallbackInfo& info;
  const char* op;
  // The device of the first tensor argument read; every later tensor argument
  // must be on it (checked as it is read), and outputs are allocated there.
  mutable Device dev = Device::CPU;
  mutable bool dev_known = false;

  Napi::Env env() const { return info.Env(); }
  // v as a live tensor argument called `name`. kSame: on the op's device (the first tensor read sets it);
  // kHostOk: a host tensor is accepted beside a cuda op too (index data the binding checks and uploads).
  enum class DeviceRule { kSame, kHostOk };
  NTensor* live_tensor(const Napi::Value& v, const char* name, DeviceRule device) const;
  [[noreturn]] void bad(ErrCode c, const std::string& what, const std::string& name, const std::string& got) const {
    fail(c, op, expected(what, name, got));
  }
  std::string describe(const Napi::Value& v) const;

  NTensor* tensor(size_t i, const char* name) const;           // required
  // A required tensor that may also be on the host when the op runs on cuda (index data: see kernel_indices).
  NTensor* host_or_device_tensor(size_t i, const char* name) const;
  NTensor* tensor_or_null(size_t i, const char* name) const;   // null/undefined → nullptr
  NTensor* tensor_field(const Napi::Object& o, const char* key) const;  // optional object field
  // A tensor field that may also be a host tensor when the op runs on cuda (small index data the binding
  // validates on the host and uploads itself); a device tensor must be on the op's device.
  NTensor* host_or_device_field(const Napi::Object& o, const char* key) const;
  bool boolean(size_t i, const char* name) const;
  double number(size_t i, const char* name) const;
  int64_t integer(size_t i, const char* name, int64_t lo, int64_t hi) const;
  std::vector<int64_t> shape(size_t i, const char* name) const;
  Napi::Object options(size_t i) const;  // missing → empty object
  double opt_number(const Napi::Object& o, const char* key, double dflt) const;
  bool opt_bool(const Napi::Object& o, const char* key, bool dflt) const;
  std::vector<NTensor*> tensor_list(size_t i, const char* name) const;
  // The same for any JS value (an options field): an array of live native tensors, each named name[k].
  std::vector<NTensor*> tensor_array(const Napi::Value& v, const char* name) const;

  Device device() const { return dev; }
  bool on_cuda() const { return dev == Device::CUDA; }
  // Records t's device, or throws E_DEVICE when it differs from the earlier arguments'.
  void note_device(const NTensor* t, const std::string& name) const;
  // A new tensor on this op's device, zero-filled unless zero is false.
  Napi::Object alloc(DType dt, const std::vector<int64_t>& shape, bool zero = true) const;

  // Checks on tensors already read.
  void want_float(const NTensor* t, const char* name) const;
  void want_dtype(const NTensor* t, DType dt, const char* name) const;
  void want_same_dtype(const NTensor* a, const NTensor* b, const char* name) const;
  void want_ndim(const NTensor* t, int64_t lo, int64_t hi, const char* name) const;
  void want_shape(const NTensor* t, const std::vector<int64_t>& s, const char* name) const;
  void want_numel(const NTensor* t, int64_t n, const char* name) const;
};

std::string tensor_desc(const NTensor* t);  // "float32 tensor [2, 3]"
std::string with_article(const std::string& noun);  // "an int32 tensor"

// A 0-d float tensor holding v.
Napi::Object scalar_tensor(const ArgReader& a, DType dt, double v);
// { loss: 0-d mean over `count` rows (0 when none), lse, count }: what the cross-entropy forwards return.
Napi::Object loss_result(const ArgReader& a, DType dt, double total, int64_t count, const Napi::Object& lse);

// The buffer of a tensor a binding allocated.
template <typename T>
T* out(const Napi::Object& o) { return NTensor::Unwrap(o)->ptr<T>(); }

// The buffer of an optional tensor argument, or null.
template <typename T>
T* ptr_or_null(NTensor* t) { return t ? t->ptr<T>() : nullptr; }

// o when cond, else null: an output (a gradient) that was not asked for.
inline Napi::Value null_or(const ArgReader& a, bool cond, const Napi::Object& o) { return cond ? Napi::Value(o) : a.env().Null(); }

// Validates int32 indices in [lo, hi) (or == allowed) and returns them as
// host memory. A cuda tensor's indices are first copied to *buf: a small
// device→host copy that waits for the stream, the price of reporting a bad
// index as an error here instead of a fault inside a kernel.
const int32_t* checked_indices(const ArgReader& a, NTensor* t, const char* name, int64_t hi, bool allow_special,
                               int32_t special, std::vector<int32_t>* buf);
// The same check where the host needs no copy of the indices: on the CPU at
// once; on cuda by a kernel whose result is read at the next read or
// synchronize (cuda::check_indices_deferred: no wait here). The op must then
// skip bad indices in its kernels rather than trust them.
void checked_indices_deferred(const ArgReader& a, NTensor* t, const char* name, int64_t hi, bool allow_special = false,
                              int32_t special = 0);

// Index data for a kernel, checked as checked_indices checks it. A host tensor
// is checked where it is and, for a cuda op, uploaded by the binding (small
// uploads go through pinned staging and do not wait; the stream-ordered free
// when this is destroyed, after the launch, keeps the copy until the kernels
// have read it). A device tensor is copied to the host for the check (a wait
// for the stream), as before. Callers that hold their indices on the host pass
// them so, and no step waits for the device on their account.
struct KernelIndices {
  const int32_t* host = nullptr;    // the checked values, on the host
  const int32_t* kernel = nullptr;  // where the op's kernels read them (the op's device)
  std::vector<int32_t> buf;
  std::shared_ptr<void> upload;
};
void kernel_indices(const ArgReader& a, NTensor* t, const char* name, int64_t hi, KernelIndices* out);
// A device copy of n host int32s for a cuda op's kernels (kernel_indices, attention's cuSeqlens): small uploads
// do not wait, and the stream-ordered free when the last holder lets go, after the launch, keeps it until read.
std::shared_ptr<void> upload_int32(const ArgReader& a, const int32_t* host, int64_t n);
// The same for any `bytes` of host memory (synchronized BatchNorm's float64 sums).
std::shared_ptr<void> upload_bytes(const ArgReader& a, const void* host, size_t bytes);

// The dtype of saved statistics (LayerNorm mean/rstd, cross-entropy lse): the
// input's on the CPU, float32 on CUDA (see stat_t in core/dtype.h).
DType stat_dtype(const NTensor* x);
// Checks a saved statistic s of the input x against stat_dtype(x).
void want_stat_dtype(const ArgReader& a, const NTensor* x, const NTensor* s, const char* name);

// Runs a binding body, turning C++ exceptions into JS errors with code and op.
Napi::Value guarded(const Napi::CallbackInfo& info, const char* op,
                    const std::function<Napi::Value(const ArgReader&)>& body);

// Calls f(T{}) for the float dtype of t (CPU kernels: float32, float64).
template <typename F>
auto dispatch_float(DType dt, const char* op, F&& f) {
  if (dt == DType::F32) return f(float{});
  if (dt == DType::F64) return f(double{});
  fail(ErrCode::Dtype, op,
       "no cpu kernel for dtype " + std::string(dtype_name(dt)) +
           (dt == DType::BF16 ? " (bfloat16 compute is CUDA-only; cast to float32 on the CPU)" : ""));
}

// Device tags for dispatch(): `if constexpr (decltype(dev)::cuda)` picks the
// kernel, and the other branch is never instantiated (so the CPU addon needs
// no CUDA symbols, and no CPU kernel is asked for bfloat16).
struct OnCpu {
  static constexpr bool cuda = false;
};
struct OnCuda {
  static constexpr bool cuda = true;
};

[[noreturn]] void no_cuda_kernel(const char* op, DType dt);

// Calls f(T{}, Dev{}) for x's device and float dtype: float32 or float64 on
// the CPU, float32 or bfloat16 on CUDA.
template <typename F>
auto dispatch(const ArgReader& a, const NTensor* x, F&& f) {
  if (x->on_cuda()) {
#ifdef CLOZE_CUDA
    if (x->dtype() == DType::F32) return f(float{}, OnCuda{});
    if (x->dtype() == DType::BF16) return f(bf16{}, OnCuda{});
#endif
    no_cuda_kernel(a.op, x->dtype());
  }
  return dispatch_float(x->dtype(), a.op, [&](auto t) { return f(t, OnCpu{}); });
}

}  // namespace cloze

// Calls fn_cuda(args) or fn_cpu(args) by the device tag from dispatch().
#define CLOZE_KERNEL(dev, fn, ...)                         \
  do {                                                     \
    if constexpr (std::decay_t<decltype(dev)>::cuda)       \
      fn##_cuda(__VA_ARGS__);                              \
    else                                                   \
      fn##_cpu(__VA_ARGS__);                               \
  } while (0)

namespace cloze {

}  // namespace cloze

#define CLOZE_EXPORT(exports, name, ...)                                                                     \
  exports.Set(name, Napi::Function::New(                                                                       \
                        exports.Env(),                                                                         \
                        [](const Napi::CallbackInfo& info) -> Napi::Value { return ::cloze::guarded(info, name, __VA_ARGS__); }, \
                        name))
