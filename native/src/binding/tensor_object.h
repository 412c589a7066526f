// The JS-visible native tensor: a shape and dtype over a shared Storage at a
// byte offset. dispose() drops this handle's share of the storage at once;
// the finalizer does the same for handles the user forgot.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "../core/dtype.h"
#include "../core/storage.h"

namespace cloze {

class NTensor : public Napi::ObjectWrap<NTensor> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Creates a JS tensor object over `storage`.
  static Napi::Object Make(Napi::Env env, std::shared_ptr<Storage> storage, size_t offset, DType dt,
                           std::vector<int64_t> shape);
  // Allocates a tensor on `dev`, zero-filled unless zero is false (outputs a kernel writes in full).
  static Napi::Object New(Napi::Env env, DType dt, const std::vector<int64_t>& shape, const char* op, bool zero = true,
                          Device dev = Device::CPU);
  static bool IsInstance(Napi::Env env, const Napi::Value& v);

  explicit NTensor(const Napi::CallbackInfo& info);

  bool disposed() const { return !storage_; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_->device(); }
  bool on_cuda() const { return storage_->device() == Device::CUDA; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(int64_t i) const { return shape_[static_cast<size_t>(i < 0 ? i + static_cast<int64_t>(shape_.size()) : i)]; }
  int64_t ndim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  void* raw() const { return static_cast<char*>(storage_->data()) + offset_; }
  template <typename T>
  T* ptr() const { return static_cast<T*>(raw()); }

 private:
  Napi::Value GetShape(const Napi::CallbackInfo& info);
  Napi::Value GetDtype(const Napi::CallbackInfo& info);
  Napi::Value GetNbytes(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Data(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value View(const Napi::CallbackInfo& info);
  Napi::Value Reshape(const Napi::CallbackInfo& info);
  Napi::Value Clone(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value Fill(const Napi::CallbackInfo& info);
  Napi::Value Cast(const Napi::CallbackInfo& info);
  Napi::Value SharesStorage(const Napi::CallbackInfo& info);

  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;
  DType dtype_ = DType::F32;
  std::vector<int64_t> shape_;
};

// Per-environment state (worker threads each get their own).
struct AddonData {
  Napi::FunctionReference tensor_ctor;
  // Runs when the environment's instance data is finalized, after its
  // tensors' finalizers: hands back the blocks they left in the cache.
  ~AddonData() { Storage::release_cache(); }
};

}  // namespace cloze
