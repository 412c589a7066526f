#include "storage.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "error.h"

namespace cloze {

namespace {
std::atomic<int64_t> g_live_bytes{0};
}

std::shared_ptr<Storage> Storage::allocate(size_t bytes, const char* op) {
  std::shared_ptr<Storage> s(new Storage());
  // aligned_alloc needs a size that is a multiple of the alignment.
  size_t padded = ((bytes + 63) / 64) * 64;
  if (padded == 0) padded = 64;
  void* p = std::aligned_alloc(64, padded);
  if (!p) fail(ErrCode::OOM, op, "could not allocate " + std::to_string(bytes) + " bytes of native memory");
  std::memset(p, 0, padded);
  s->data_ = p;
  s->bytes_ = bytes;
  s->owned_ = true;
  g_live_bytes += static_cast<int64_t>(bytes);
  return s;
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t bytes, std::function<void()> release) {
  std::shared_ptr<Storage> s(new Storage());
  s->data_ = data;
  s->bytes_ = bytes;
  s->owned_ = false;
  s->release_ = std::move(release);
  return s;
}

Storage::~Storage() {
  if (owned_) {
    std::free(data_);
    g_live_bytes -= static_cast<int64_t>(bytes_);
  } else if (release_) {
    release_();
  }
}

int64_t Storage::live_bytes() { return g_live_bytes.load(); }

}  // namespace cloze
