// Native memory behind tensors. A Storage is shared (by views, by zero-copy
// TypedArray views handed to JS) and freed when its last holder lets go, so a
// JS view can never outlive the bytes it points at.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace cloze {

class Storage {
 public:
  // Allocates `bytes` (zero-filled); throws OpError(E_OOM) on failure.
  static std::shared_ptr<Storage> allocate(size_t bytes, const char* op);
  // Wraps memory owned elsewhere (a JS ArrayBuffer); `release` runs on destruction.
  static std::shared_ptr<Storage> borrow(void* data, size_t bytes, std::function<void()> release);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  bool owned() const { return owned_; }

  // Bytes of native memory owned by live Storages in this process.
  static int64_t live_bytes();

 private:
  Storage() = default;
  void* data_ = nullptr;
  size_t bytes_ = 0;
  bool owned_ = false;
  std::function<void()> release_;
};

}  // namespace cloze
