// MPI for data-parallel training: init, finalize, barrier, in-place SUM
// all-reduce of float CPU tensors (blocking and non-blocking, the latter
// waited on with a timeout), broadcast of a small host buffer, abort.
//
// Built with MPI only when native/tools/has-mpi.cjs finds it (CLOZE_HAVE_MPI);
// otherwise every entry throws "built without MPI" and mpiAvailable() says
// why, as the addon builds without OpenBLAS. The cuda addon finds MPI the same
// way (CMakeLists.txt); there it carries NCCL's unique id and the small sums,
// while bind_nccl.cc all-reduces the cuda gradients.
//
// Errors: the world communicator gets MPI_ERRORS_RETURN, so a failing call
// returns a code that becomes a JS exception naming the collective, instead of
// MPI's default handler aborting the job from inside the addon.
#ifdef CLOZE_HAVE_MPI
#include <dlfcn.h>
// The C API only: Open MPI's deprecated C++ bindings would add libmpi_cxx and warnings.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "bindings.h"

namespace cloze {

namespace {

[[maybe_unused]] const char* kNoMpi = "built without MPI (install libopenmpi-dev and rebuild: npx node-gyp rebuild)";

#ifdef CLOZE_HAVE_MPI

struct State {
  bool initialized = false;
  int rank = 0, size = 1;
};
State g_state;

// An in-flight non-blocking collective: the request, what it is (for messages), and a reference that keeps
// the tensor (or typed array) whose memory MPI writes into alive until it completes.
struct Pending {
  MPI_Request req = MPI_REQUEST_NULL;
  std::string what;
  Napi::ObjectReference keep;
};
std::map<int64_t, Pending> g_pending;
int64_t g_next_handle = 1;

std::string mpi_error(int rc) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(buf, len);
}

std::string where() { return " on rank " + std::to_string(g_state.rank) + " of " + std::to_string(g_state.size); }

void check(int rc, const char* op, const std::string& what) {
  if (rc != MPI_SUCCESS) fail(ErrCode::Internal, op, what + " failed" + where() + ": " + mpi_error(rc));
}

void want_init(const ArgReader& a) {
  if (!g_state.initialized) fail(ErrCode::Value, a.op, "Expected MPI to be initialized (call mpiInit first) but received a call before it");
}

// A float CPU tensor's buffer and MPI type, for the in-place reductions.
struct Buf {
  void* ptr;
  int count;
  MPI_Datatype type;
  std::string desc;
};
Buf float_buffer(const ArgReader& a, NTensor* t, const char* name) {
  if (t->on_cuda()) a.bad(ErrCode::Device, "a CPU tensor (MPI reduces host memory: MpiCommunicator stages cuda tensors through host copies, or NCCL takes them)", name, tensor_desc(t));
  a.want_float(t, name);
  if (t->dtype() != DType::F32 && t->dtype() != DType::F64) a.bad(ErrCode::Dtype, "a float32 or float64 tensor", name, tensor_desc(t));
  if (t->numel() > INT32_MAX) a.bad(ErrCode::Shape, "at most 2^31 - 1 elements (MPI's count is an int)", name, tensor_desc(t));
  const bool f32 = t->dtype() == DType::F32;
  return {f32 ? static_cast<void*>(t->ptr<float>()) : static_cast<void*>(t->ptr<double>()), static_cast<int>(t->numel()),
          f32 ? MPI_FLOAT : MPI_DOUBLE, tensor_desc(t)};
}

// The pending collective named by argument 0's handle, or an error naming the handle.
std::map<int64_t, Pending>::iterator pending_arg(const ArgReader& a) {
  const int64_t h = a.integer(0, "handle", 1, (int64_t(1) << 53));
  auto it = g_pending.find(h);
  if (it == g_pending.end()) a.bad(ErrCode::Value, "the handle of a pending collective", "handle", std::to_string(h));
  return it;
}

// One MPI_Test of a pending collective: whether it has completed; a failed one is forgotten and thrown.
bool test_once(const ArgReader& a, std::map<int64_t, Pending>::iterator it) {
  int flag = 0;
  const int rc = MPI_Test(&it->second.req, &flag, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) {
    const std::string what = it->second.what;
    g_pending.erase(it);
    fail(ErrCode::Internal, a.op, "the " + what + " failed" + where() + ": " + mpi_error(rc));
  }
  return flag != 0;
}

#endif

}  // namespace

void register_mpi(Napi::Env env, Napi::Object exports) {
  (void)env;
  // mpiAvailable() → { available, reason, library }: whether this addon was built with MPI.
  CLOZE_EXPORT(exports, "mpiAvailable", [](const ArgReader& a) -> Napi::Value {
    Napi::Object o = Napi::Object::New(a.env());
#ifdef CLOZE_HAVE_MPI
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    std::string s(lib, len);
    // The first line, without the terminating NUL some libraries count in len.
    if (auto nl = s.find_first_of(std::string("\r\n\0", 3)); nl != std::string::npos) s.resize(nl);
    o.Set("available", true);
    o.Set("reason", "");
    o.Set("library", s);
#else
    o.Set("available", false);
    o.Set("reason", kNoMpi);
    o.Set("library", "");
#endif
    return o;
  });

  // mpiInit() → { rank, size }: MPI_Init_thread(FUNNELED: only the JS thread calls MPI). Idempotent.
  CLOZE_EXPORT(exports, "mpiInit", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_HAVE_MPI
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) fail(ErrCode::Value, a.op, "Expected MPI not yet finalized but received mpiInit after mpiFinalize (MPI cannot start twice in one process)");
    if (!g_state.initialized) {
      int already = 0;
      MPI_Initialized(&already);
      if (!already) {
        // Node loads addons RTLD_LOCAL, so libmpi's symbols are invisible to the plugins Open MPI dlopens
        // during init (mca_*.so), which then fail on undefined ompi_*/opal_* symbols. Re-open the libmpi
        // this addon is linked against (found through one of its symbols) with RTLD_GLOBAL first.
        Dl_info info;
        if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) == 0 || info.dli_fname == nullptr ||
            dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL) == nullptr) {
          const char* e = dlerror();
          fail(ErrCode::Internal, a.op, std::string("could not make libmpi's symbols global (dlopen RTLD_GLOBAL): ") + (e ? e : "dladdr failed"));
        }
        int provided = 0;
        check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), a.op, "MPI_Init_thread");
        if (provided < MPI_THREAD_FUNNELED) fail(ErrCode::Internal, a.op, "Expected MPI thread support FUNNELED but received level " + std::to_string(provided));
      }
      check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), a.op, "MPI_Comm_set_errhandler");
      check(MPI_Comm_rank(MPI_COMM_WORLD, &g_state.rank), a.op, "MPI_Comm_rank");
      check(MPI_Comm_size(MPI_COMM_WORLD, &g_state.size), a.op, "MPI_Comm_size");
      g_state.initialized = true;
    }
    Napi::Object o = Napi::Object::New(a.env());
    o.Set("rank", g_state.rank);
    o.Set("size", g_state.size);
    return o;
#else
    fail(ErrCode::Value, a.op, kNoMpi);
#endif
  });

  // mpiFinalize(): after every pending collective completed; a no-op before init or when already finalized.
  CLOZE_EXPORT(exports, "mpiFinalize", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_HAVE_MPI
    int done = 0;
    MPI_Finalized(&done);
    if (g_state.initialized && !done) {
      if (!g_pending.empty()) fail(ErrCode::Value, a.op, "Expected no pending collectives at finalize but received " + std::to_string(g_pending.size()));
      check(MPI_Finalize(), a.op, "MPI_Finalize");
    }
    g_state.initialized = false;
    return a.env().Undefined();
#else
    fail(ErrCode::Value, a.op, kNoMpi);
#endif
  });

  // mpiAllreduce(t): in-place SUM over all ranks of a float32/float64 CPU tensor (e.g. a flat gradient buffer).
  CLOZE_EXPORT(exports, "mpiAllreduce", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_HAVE_MPI
    want_init(a);
    Buf b = float_buffer(a, a.tensor(0, "input"), "input");
    check(MPI_Allreduce(MPI_IN_PLACE, b.ptr, b.count, b.type, MPI_SUM, MPI_COMM_WORLD), a.op, "MPI_Allreduce of " + b.desc);
    return a.env().Undefined();
#else
    fail(ErrCode::Value, a.op, kNoMpi);
#endif
  });

  // mpiIallreduce(t) → handle: the same, started (MPI_Iallreduce); t must not be touched until mpiWait(handle).
  CLOZE_EXPORT(exports, "mpiIallreduce", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_HAVE_MPI
    want_init(a);
    Buf b = float_buffer(a, a.tensor(0, "input"), "input");
    Pending p;
    p.what = "allreduce of " + b.desc;
    check(MPI_Iallreduce(MPI_IN_PLACE, b.ptr, b.count, b.type, MPI_SUM, MPI_COMM_WORLD, &p.req), a.op, "MPI_Iallreduce of " + b.desc);
    p.keep = Napi::Persistent(a.info[0].As<Napi::Object>());
    const int64_t h = g_next_handle++;
    g_pending.emplace(h, std::move(p));
    return Napi::Number::New(a.env(), static_cast<double>(h));
#else
    fail(ErrCode::Value, a.op, kNoMpi);
#endif
  });

  // mpiIbarrier() → handle: a barrier that mpiWait can bound in time.
  CLOZE_EXPORT(exports, "mpiIbarrier", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_HAVE_MPI
    want_init(a);
    Pending p;
    p.what = "barrier";
    check(MPI_Ibarrier(MPI_COMM_WORLD, &p.req), a.op, "MPI_Ibarrier");
    const int64_t h = g_next_handle++;
    g_pending.emplace(h, std::move(p));
    return Napi::Number::New(a.env(), static_cast<double>(h));
#else
    fail(ErrCode::Value, a.op, kNoMpi);
#endif
  });

  // mpiWait(handle, timeoutMs): polls MPI_Test until the collective completes; throws naming it and the timeout
  // when it has not completed in time (a rank died or stalled). The request stays pending then: the caller aborts.
  CLOZE_EXPORT(exports, "mpiWait", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_HAVE_MPI
    want_init(a);
    auto it = pending_arg(a);
    const double timeout_ms = a.number(1, "timeoutMs");
    if (!(timeout_ms > 0)) a.bad(ErrCode::Value, "a positive number of milliseconds", "timeoutMs", a.describe(a.info[1]));
    const auto t0 = std::chrono::steady_clock::now();
    // Poll, sleeping a little longer each time up to 1 ms: MPI_Test drives progress, and a busy loop would
    // take a core from the other ranks when they share a machine.
    int sleep_us = 1;
    for (;;) {
      if (test_once(a, it)) break;
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (ms > timeout_ms) {
        fail(ErrCode::Internal, a.op,
             "the " + it->second.what + " did not complete within " + std::to_string(static_cast<int64_t>(timeout_ms)) + " ms" + where() +
                 ": another rank died or stalled");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
      sleep_us = std::min(sleep_us * 2, 1000);
    }
    g_pending.erase(it);
    return a.env().Undefined();
#else
    fail(ErrCode::Value, a.op, kNoMpi);
#endif
  });

  // mpiTest(handle) → whether the collective has completed: one MPI_Test, which also drives its progress (Open MPI
  // moves a non-blocking collective on only inside MPI calls). The handle stays valid for mpiWait either way.
  CLOZE_EXPORT(exports, "mpiTest", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_HAVE_MPI
    want_init(a);
    return Napi::Boolean::New(a.env(), test_once(a, pending_arg(a)));
#else
    fail(ErrCode::Value, a.op, kNoMpi);
#endif
  });

  // mpiBroadcast(typedArray, root): in place, from root to every rank (small buffers: seeds, ids).
  CLOZE_EXPORT(exports, "mpiBroadcast", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_HAVE_MPI
    want_init(a);
    if (a.info.Length() < 1 || !a.info[0].IsTypedArray()) a.bad(ErrCode::Value, "a typed array", "buffer", a.info.Length() ? a.describe(a.info[0]) : "nothing");
    const int root = static_cast<int>(a.integer(1, "root", 0, g_state.size - 1));
    Napi::TypedArray ta = a.info[0].As<Napi::TypedArray>();
    if (ta.ByteLength() > INT32_MAX) a.bad(ErrCode::Shape, "at most 2^31 - 1 bytes", "buffer", std::to_string(ta.ByteLength()) + " bytes");
    uint8_t* p = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    check(MPI_Bcast(p, static_cast<int>(ta.ByteLength()), MPI_BYTE, root, MPI_COMM_WORLD), a.op,
          "MPI_Bcast of " + std::to_string(ta.ByteLength()) + " bytes from rank " + std::to_string(root));
    return a.env().Undefined();
#else
    fail(ErrCode::Value, a.op, kNoMpi);
#endif
  });

  // mpiAbort(code): MPI_Abort on the world: every rank of the job is terminated (a rank that failed ends the job).
  CLOZE_EXPORT(exports, "mpiAbort", [](const ArgReader& a) -> Napi::Value {
#ifdef CLOZE_HAVE_MPI
    want_init(a);
    const int code = static_cast<int>(a.integer(0, "code", 0, 255));
    MPI_Abort(MPI_COMM_WORLD, code);
    return a.env().Undefined();
#else
    fail(ErrCode::Value, a.op, kNoMpi);
#endif
  });
}

}  // namespace cloze
