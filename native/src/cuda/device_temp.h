// A device temporary from the caching allocator, freed when its scope ends
// (also when a later launch throws). The allocator is stream ordered, so
// freeing right after the last launch that uses the block is safe: a later
// user of the same block runs after it on the stream.
#pragma once
#include <cstddef>

#include "runtime.h"

namespace cloze {
namespace cuda {

class DeviceTemp {
 public:
  DeviceTemp(size_t bytes, const char* op) : p_(bytes ? alloc(bytes, op) : nullptr) {}
  ~DeviceTemp() { free(p_); }
  DeviceTemp(const DeviceTemp&) = delete;
  DeviceTemp& operator=(const DeviceTemp&) = delete;
  template <typename U>
  U* as() const { return static_cast<U*>(p_); }

 private:
  void* p_;
};

}  // namespace cuda
}  // namespace cloze
