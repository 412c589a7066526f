#include "storage.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include <unistd.h>

#include "error.h"
#ifdef CLOZE_CUDA
#include "../cuda/runtime.h"
#endif

namespace cloze {

namespace {

std::atomic<int64_t> g_live_bytes{0};

constexpr size_t kCacheMin = size_t(1) << 20;

size_t physical_memory() {
  static const size_t phys = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return phys;
}

// Free large blocks by capacity. A request takes the smallest cached block
// that fits and wastes at most a quarter of it.
struct BlockCache {
  std::mutex mu;
  std::multimap<size_t, void*> blocks;
  size_t cached = 0;
  size_t limit = std::min<size_t>(size_t(1) << 30, physical_memory() / 8);

  void* take(size_t capacity, size_t* got) {
    std::lock_guard<std::mutex> lk(mu);
    auto it = blocks.lower_bound(capacity);
    if (it == blocks.end() || it->first > capacity + capacity / 4) return nullptr;
    *got = it->first;
    void* p = it->second;
    cached -= it->first;
    blocks.erase(it);
    return p;
  }
  bool put(void* p, size_t capacity) {
    std::lock_guard<std::mutex> lk(mu);
    if (cached + capacity > limit) return false;
    blocks.emplace(capacity, p);
    cached += capacity;
    return true;
  }
  void shrink_to(size_t target) {
    std::lock_guard<std::mutex> lk(mu);
    while (cached > target && !blocks.empty()) {
      auto it = std::prev(blocks.end());  // largest first
      cached -= it->first;
      std::free(it->second);
      blocks.erase(it);
    }
  }
};

BlockCache& cache() {
  static BlockCache* c = new BlockCache();  // never destroyed: frees at exit are the OS's job
  return *c;
}

}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t bytes, const char* op, bool zero, Device dev) {
  if (dev == Device::CUDA) {
#ifdef CLOZE_CUDA
    std::shared_ptr<Storage> s(new Storage());
    s->data_ = cuda::alloc(bytes, op);
    s->bytes_ = bytes;
    s->capacity_ = bytes;
    s->owned_ = true;
    s->device_ = Device::CUDA;
    if (zero) cuda::memset_zero(s->data_, bytes, op);
    return s;
#else
    fail(ErrCode::Device, op,
         "this is the CPU addon, which has no CUDA support; build the CUDA addon with `npm run build:cuda` on a machine "
         "with a CUDA toolkit");
#endif
  }
  // A request beyond physical memory fails here rather than being granted by
  // overcommit and killing the process when the pages are touched.
  if (bytes > physical_memory())
    fail(ErrCode::OOM, op,
         "could not allocate " + std::to_string(bytes) + " bytes of native memory (the machine has " +
             std::to_string(physical_memory()) + ")");
  std::shared_ptr<Storage> s(new Storage());
  size_t capacity = bytes == 0 ? 1 : bytes;
  void* p = nullptr;
  if (bytes >= kCacheMin) {
    capacity = (bytes + kCacheMin - 1) / kCacheMin * kCacheMin;
    size_t got = 0;
    p = cache().take(capacity, &got);
    if (p) {
      capacity = got;
      if (zero) std::memset(p, 0, bytes);
    }
  }
  if (!p) {
    // calloc: large blocks come zeroed from mmap without touching every page.
    p = zero ? std::calloc(capacity, 1) : std::malloc(capacity);
    if (!p) fail(ErrCode::OOM, op, "could not allocate " + std::to_string(bytes) + " bytes of native memory");
  }
  s->data_ = p;
  s->bytes_ = bytes;
  s->capacity_ = capacity;
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
#ifdef CLOZE_CUDA
  if (device_ == Device::CUDA) {
    cuda::free(data_);  // back to its stream's pool; never throws
    return;
  }
#endif
  if (owned_) {
    g_live_bytes -= static_cast<int64_t>(bytes_);
    if (capacity_ < kCacheMin || !cache().put(data_, capacity_)) std::free(data_);
  } else if (release_) {
    release_();
  }
}

int64_t Storage::live_bytes() { return g_live_bytes.load(); }

int64_t Storage::cached_bytes() {
  std::lock_guard<std::mutex> lk(cache().mu);
  return static_cast<int64_t>(cache().cached);
}

void Storage::release_cache() { cache().shrink_to(0); }

void Storage::set_cache_limit(size_t bytes) {
  {
    std::lock_guard<std::mutex> lk(cache().mu);
    cache().limit = bytes;
  }
  cache().shrink_to(bytes);
}

}  // namespace cloze
