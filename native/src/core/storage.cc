#include "storage.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include <unistd.h>

#include "error.h"

namespace cloze {

namespace {
std::atomic<int64_t> g_live_bytes{0};
}

std::shared_ptr<Storage> Storage::allocate(size_t bytes, const char* op) {
  std::shared_ptr<Storage> s(new Storage());
  // A request beyond physical memory fails here rather than being granted by
  // overcommit and killing the process when the pages are touched.
  static const size_t phys = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  if (bytes > phys)
    fail(ErrCode::OOM, op,
         "could not allocate " + std::to_string(bytes) + " bytes of native memory (the machine has " +
             std::to_string(phys) + ")");
  // calloc: large blocks come zeroed from mmap without touching every page.
  void* p = std::calloc(bytes == 0 ? 1 : bytes, 1);
  if (!p) fail(ErrCode::OOM, op, "could not allocate " + std::to_string(bytes) + " bytes of native memory");
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
