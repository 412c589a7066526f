// Host access to small tensors a binding validates (index, mask, box and
// statistic tensors): a CPU tensor is read in place; a CUDA tensor is copied
// to the host first, which waits for the stream (a host sync), so callers use
// it only where the CPU op reads values on the host too.
#pragma once
#include <cmath>
#include <vector>

#include "../core/dtype.h"
#include "../core/error.h"
#include "tensor_object.h"
#ifdef CLOZE_CUDA
#include "../cuda/runtime.h"
#endif

namespace cloze {

template <typename T>
class HostView {
 public:
  HostView(const NTensor* t, const char* op) {
    if (!t->on_cuda()) {
      data_ = t->ptr<T>();
      return;
    }
#ifdef CLOZE_CUDA
    copy_.resize(static_cast<size_t>(t->numel()));
    if (!copy_.empty()) cuda::copy(copy_.data(), false, t->raw(), true, t->nbytes(), op);
    data_ = copy_.data();
#else
    fail(ErrCode::Device, op, "a cuda tensor reached the cpu addon");
#endif
  }
  const T& operator[](int64_t i) const { return data_[i]; }
  const T* data() const { return data_; }

 private:
  std::vector<T> copy_;
  const T* data_ = nullptr;
};

// An element as a double, for checks shared by every float dtype.
inline double host_value(float x) { return x; }
inline double host_value(double x) { return x; }
inline double host_value(bf16 x) { return float_from_bf16(x); }

}  // namespace cloze
