#include "storage.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
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

constexpr size_t kCacheMin = size_t(1) << 17;  // 128 KiB: see storage.h

size_t physical_memory() {
  static const size_t phys = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return phys;
}

bool read_text(const std::string& path, std::string* out) {
  std::ifstream f(path);
  if (!f) return false;
  std::ostringstream o;
  o << f.rdbuf();
  *out = o.str();
  return true;
}

// A cgroup limit file's value in bytes, or 0 for none: "max" (v2), a v1
// "unlimited" (a page-rounded 2^63 − 1), or text that is not a byte count.
size_t parse_cgroup_limit(const std::string& text) {
  size_t i = 0, v = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) i++;
  if (i >= text.size() || text[i] < '0' || text[i] > '9') return 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; i++) {
    if (v > (SIZE_MAX - 9) / 10) return 0;
    v = v * 10 + static_cast<size_t>(text[i] - '0');
  }
  if (v >= (size_t(1) << 62)) return 0;
  return v;
}

struct MemoryLimit {
  size_t bytes;
  std::string source;
};

// The smallest limit in `file` of dir and its ancestors up to root (a child
// cgroup may not exceed its parents'), or 0.
size_t cgroup_walk(const std::string& root, std::string rel, const char* file, std::string* where) {
  size_t best = 0;
  for (;;) {
    while (rel.size() > 1 && rel.back() == '/') rel.pop_back();
    const std::string dir = rel == "/" || rel.empty() ? root : root + rel;
    std::string text;
    if (read_text(dir + "/" + file, &text)) {
      const size_t v = parse_cgroup_limit(text);
      if (v && (!best || v < best)) {
        best = v;
        *where = dir + "/" + file;
      }
    }
    if (rel == "/" || rel.empty()) break;
    const size_t slash = rel.rfind('/');
    rel = slash == 0 || slash == std::string::npos ? "/" : rel.substr(0, slash);
  }
  return best;
}

MemoryLimit find_memory_limit() {
  MemoryLimit m{physical_memory(), "the machine's physical memory"};
  const char* env_root = std::getenv("CLOZE_CGROUP_ROOT");
  const std::string root = env_root && *env_root ? env_root : "/sys/fs/cgroup";
  std::string v2 = "/", v1 = "/";
  std::string self;
  if (!(env_root && *env_root) && read_text("/proc/self/cgroup", &self)) {
    // Lines "id:controllers:path": v2 is "0::path"; v1's memory line lists "memory".
    std::istringstream lines(self);
    std::string line;
    while (std::getline(lines, line)) {
      const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
      if (b == std::string::npos) continue;
      const std::string ctl = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
      if (ctl.empty()) v2 = path;
      std::istringstream names(ctl);
      std::string n;
      while (std::getline(names, n, ','))
        if (n == "memory") v1 = path;
    }
  }
  std::string where;
  size_t lim = cgroup_walk(root, v2, "memory.max", &where);
  if (!lim) lim = cgroup_walk(root + "/memory", v1, "memory.limit_in_bytes", &where);
  if (lim && lim < m.bytes) m = MemoryLimit{lim, "the cgroup memory limit in " + where};
  return m;
}

const MemoryLimit& memory_limit_info() {
  static const MemoryLimit m = find_memory_limit();
  return m;
}

// The first kHostAlign-aligned address in a block from malloc (which has kHostAlign spare bytes).
void* align_host(void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  return reinterpret_cast<void*>((a + kHostAlign - 1) / kHostAlign * kHostAlign);
}

// Free large blocks by capacity, as malloc returned them (capacity excludes the kHostAlign spare bytes). A request
// takes the smallest cached block that fits and wastes at most a quarter of it.
struct BlockCache {
  std::mutex mu;
  std::multimap<size_t, void*> blocks;
  size_t cached = 0;
  size_t limit = std::min<size_t>(size_t(1) << 30, memory_limit_info().bytes / 8);

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
  // A request beyond what the process may have fails here rather than being
  // granted by overcommit and killing the process (or the container's OOM
  // killer ending it) when the pages are touched.
  check_request(bytes, op);
  std::shared_ptr<Storage> s(new Storage());
  size_t capacity = bytes == 0 ? 1 : bytes;
  void* p = nullptr;  // the block as malloc returned it: the data start kHostAlign-aligned inside
  if (bytes >= kCacheMin) {
    capacity = (bytes + kCacheMin - 1) / kCacheMin * kCacheMin;
    size_t got = 0;
    p = cache().take(capacity, &got);
    if (p) {
      capacity = got;
      if (zero) std::memset(align_host(p), 0, bytes);
    }
  }
  if (!p) {
    // calloc: large blocks come zeroed from mmap without touching every page. kHostAlign more bytes than asked
    // for leave room to align the start (aligned_alloc has no zeroing variant).
    p = zero ? std::calloc(capacity + kHostAlign, 1) : std::malloc(capacity + kHostAlign);
    if (!p) fail(ErrCode::OOM, op, "could not allocate " + std::to_string(bytes) + " bytes of native memory");
  }
  s->base_ = p;
  s->data_ = align_host(p);
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
    if (capacity_ < kCacheMin || !cache().put(base_, capacity_)) std::free(base_);
  } else if (release_) {
    release_();
  }
}

int64_t Storage::live_bytes() { return g_live_bytes.load(); }

int64_t Storage::cached_bytes() {
  std::lock_guard<std::mutex> lk(cache().mu);
  return static_cast<int64_t>(cache().cached);
}

size_t Storage::memory_limit() { return memory_limit_info().bytes; }
const std::string& Storage::memory_limit_source() { return memory_limit_info().source; }

void Storage::check_request(size_t bytes, const char* op) {
  const MemoryLimit& m = memory_limit_info();
  if (bytes > m.bytes)
    fail(ErrCode::OOM, op,
         "could not allocate " + std::to_string(bytes) + " bytes of native memory (the process may use at most " +
             std::to_string(m.bytes) + " bytes: " + m.source + ")");
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
