// Elementwise ops, bias add, reductions and activations on the device, in
// grid-stride loops with arithmetic in fp32 whatever the storage type. These
// kernels are memory-bound, so where every pointer is 16-byte aligned (checked
// on the host: a view at an element offset need not be) a thread moves one
// 16-byte pack of kVec elements (vec.cuh) per access, and the last n % kVec
// elements go one by one; otherwise every element goes one by one. Both paths
// call the same per-element function, so they give the same bits. The
// reductions (sumRows, sum, mean) are atomic-free and fixed in order
// (colsum.cuh, reduce.cuh), so they repeat bit for bit.
#include <type_traits>

#include "../ops/elementwise.h"
#include "colsum.cuh"
#include "common.cuh"
#include "gelu.cuh"
#include "reduce.cuh"
#include "vec.cuh"

namespace cloze {

namespace {

using cuda::kVec;
using cuda::ld;
using cuda::ld_pack;
using cuda::st;
using cuda::st_pack;

// Whole packs a kernel runs over: n / kVec where the pack path is on, else none (every element
// then goes through the scalar loop, which starts at element packs·kVec).
template <typename T>
__device__ __forceinline__ int64_t packs_of(bool packed, int64_t n) { return packed ? n / kVec<T> : 0; }

// Threads worth launching: one per pack (the tail's < kVec elements go to the first few), else one per element.
template <typename T>
unsigned pack_blocks(bool packed, int64_t n) { return cuda::blocks_for(packed ? n / kVec<T> : n); }

// The per-element formulas, shared by the pack and scalar loops.
__device__ __forceinline__ float binary_f(bool add, float x, float y) { return add ? x + y : x * y; }
__device__ __forceinline__ float axpy_f(float o, float s, float x) { return o + s * x; }

template <Act A>
__device__ __forceinline__ float act_f(float x) {
  if constexpr (A == Act::Gelu) return x * cuda::normal_cdf_f(x);
  else if constexpr (A == Act::Tanh) return tanhf(x);
  else if constexpr (A == Act::Relu6) return x > 0.f ? (x < 6.f ? x : 6.f) : 0.f;
  else return x > 0.f ? x : 0.f;
}

template <Act A>
__device__ __forceinline__ float act_grad_f(float gi, float x) {
  if constexpr (A == Act::Gelu) {
    return gi * (cuda::normal_cdf_f(x) + x * cuda::normal_pdf_f(x));
  } else if constexpr (A == Act::Tanh) {
    const float y = tanhf(x);
    return gi * (1.f - y * y);
  } else if constexpr (A == Act::Relu6) {
    return x > 0.f && x < 6.f ? gi : 0.f;
  } else {
    return x > 0.f ? gi : 0.f;
  }
}

// out[i] = f(x[i], y[i]) for every i < n (f's second argument is 0 where y is null): the pack loop where
// `packed`, then the scalar loop over the rest, both through the same f. out may be x or y (axpy in
// place): each element is read before it is written, by the same thread.
template <typename T, typename F>
__device__ __forceinline__ void map_elements(const T* x, const T* y, T* out, int64_t n, bool packed, F f) {
  constexpr int V = kVec<T>;
  const int64_t np = packs_of<T>(packed, n), from = np * V;
  CLOZE_GRID_STRIDE(j, np) {
    float u[V], v[V] = {};
    ld_pack(x, j, u);
    if (y) ld_pack(y, j, v);
#pragma unroll
    for (int e = 0; e < V; e++) u[e] = f(u[e], v[e]);
    st_pack(out, j, u);
  }
  CLOZE_GRID_STRIDE(k, n - from) {
    const int64_t i = from + k;
    st(out, i, f(ld(x, i), y ? ld(y, i) : 0.f));
  }
}

template <typename T>
__global__ void binary_kernel(bool add, const T* a, const T* b, T* out, int64_t n, bool packed) {
  map_elements(a, b, out, n, packed, [add](float x, float y) { return binary_f(add, x, y); });
}

template <typename T>
__global__ void mul_backward_kernel(const T* g, const T* a, const T* b, T* da, T* db, int64_t n, bool packed) {
  constexpr int V = kVec<T>;
  const int64_t np = packs_of<T>(packed, n), from = np * V;
  CLOZE_GRID_STRIDE(j, np) {
    float gv[V], v[V];
    ld_pack(g, j, gv);
    if (da) {
      ld_pack(b, j, v);
#pragma unroll
      for (int e = 0; e < V; e++) v[e] = gv[e] * v[e];
      st_pack(da, j, v);
    }
    if (db) {
      ld_pack(a, j, v);
#pragma unroll
      for (int e = 0; e < V; e++) v[e] = gv[e] * v[e];
      st_pack(db, j, v);
    }
  }
  CLOZE_GRID_STRIDE(k, n - from) {
    const int64_t i = from + k;
    const float gi = ld(g, i);
    if (da) st(da, i, gi * ld(b, i));
    if (db) st(db, i, gi * ld(a, i));
  }
}

template <typename T>
__global__ void scale_kernel(const T* a, float s, T* out, int64_t n, bool packed) {
  map_elements(a, static_cast<const T*>(nullptr), out, n, packed, [s](float x, float) { return s * x; });
}

template <typename T>
__global__ void axpy_kernel(const T* a, float s, T* out, int64_t n, bool packed) {
  map_elements(static_cast<const T*>(out), a, out, n, packed, [s](float o, float x) { return axpy_f(o, s, x); });
}

// out[i] = a[i] + b[i mod cols]. The pack path also needs cols % kVec == 0 (checked on the host), so a
// pack never straddles two rows and its bias is pack (j mod cols/kVec) of b.
template <typename T>
__global__ void bias_add_kernel(const T* a, const T* b, T* out, int64_t n, int64_t cols, bool packed) {
  constexpr int V = kVec<T>;
  const int64_t np = packs_of<T>(packed, n), from = np * V;
  if (np > 0) {
    // The bias pack c = j mod cp advances by the grid stride mod cp per step (one wrap at most, both
    // terms being < cp): one 64-bit division per thread rather than one per pack.
    const int64_t cp = cols / V;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    const int64_t dc = stride % cp;
    int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    int64_t c = j % cp;
    for (; j < np; j += stride) {
      float x[V], y[V];
      ld_pack(a, j, x);
      ld_pack(b, c, y);
#pragma unroll
      for (int e = 0; e < V; e++) x[e] = x[e] + y[e];
      st_pack(out, j, x);
      c += dc;
      if (c >= cp) c -= cp;
    }
  }
  CLOZE_GRID_STRIDE(k, n - from) {
    const int64_t i = from + k;
    st(out, i, ld(a, i) + ld(b, i % cols));
  }
}

template <typename T>
__global__ void fill_scaled_kernel(const T* g, double alpha, T* out, int64_t n) {
  // As the CPU: the product in double, then one rounding to the storage type.
  const float v = static_cast<float>(static_cast<double>(ld(g, 0)) * alpha);
  CLOZE_GRID_STRIDE(i, n) st(out, i, v);
}

// The activation is a template argument: GELU's backward is near the ALU limit at HBM speed, and a
// per-element branch on a runtime `act` would cost issue slots in every element of the unrolled pack.
template <Act A, typename T>
__global__ void act_forward_kernel(const T* a, T* out, int64_t n, bool packed) {
  map_elements(a, static_cast<const T*>(nullptr), out, n, packed, [](float x, float) { return act_f<A>(x); });
}

template <Act A, typename T>
__global__ void act_backward_kernel(const T* g, const T* a, T* out, int64_t n, bool packed) {
  map_elements(g, a, out, n, packed, [](float gi, float x) { return act_grad_f<A>(gi, x); });
}

// Calls f(std::integral_constant<Act, act>{}): the kernels take the activation as a template argument.
template <typename F>
void with_act(Act act, F&& f) {
  switch (act) {
    case Act::Gelu: f(std::integral_constant<Act, Act::Gelu>{}); break;
    case Act::Tanh: f(std::integral_constant<Act, Act::Tanh>{}); break;
    case Act::Relu6: f(std::integral_constant<Act, Act::Relu6>{}); break;
    case Act::Relu: f(std::integral_constant<Act, Act::Relu>{}); break;
  }
}

const char* act_name(Act act, bool backward) {
  if (act == Act::Gelu) return backward ? "geluBackward" : "gelu";
  if (act == Act::Tanh) return backward ? "tanhBackward" : "tanh";
  if (act == Act::Relu6) return backward ? "relu6Backward" : "relu6";
  return backward ? "reluBackward" : "relu";
}

// Row sums of a [R, C]: the functor column_sums() calls per (row, column).
template <typename T>
struct RowTerm {
  const T* a;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, float* acc) const { acc[0] += ld(a, r * C + c); }
};

}  // namespace

template <typename T>
void binary_forward_cuda(BinaryOp op, const EltParams<T>& p) {
  const bool packed = cuda::aligned16(p.a, p.b, p.out);
  CLOZE_LAUNCH(op == BinaryOp::Add ? "add" : "mul", binary_kernel<T>, pack_blocks<T>(packed, p.n), cuda::kThreads, 0,
               op == BinaryOp::Add, p.a, p.b, p.out, p.n, packed);
}

template <typename T>
void mul_backward_cuda(const EltParams<T>& p) {
  if (!p.out && !p.out2) return;
  const bool packed = cuda::aligned16(p.g, p.a, p.b, p.out, p.out2);
  CLOZE_LAUNCH("mulBackward", mul_backward_kernel<T>, pack_blocks<T>(packed, p.n), cuda::kThreads, 0, p.g, p.a, p.b,
               p.out, p.out2, p.n, packed);
}

template <typename T>
void scale_cuda(const EltParams<T>& p) {
  const bool packed = cuda::aligned16(p.a, p.out);
  CLOZE_LAUNCH("scale", scale_kernel<T>, pack_blocks<T>(packed, p.n), cuda::kThreads, 0, p.a,
               static_cast<float>(p.alpha), p.out, p.n, packed);
}

template <typename T>
void axpy_cuda(const EltParams<T>& p) {
  const bool packed = cuda::aligned16(p.a, p.out);
  CLOZE_LAUNCH("axpyInPlace", axpy_kernel<T>, pack_blocks<T>(packed, p.n), cuda::kThreads, 0, p.a,
               static_cast<float>(p.alpha), p.out, p.n, packed);
}

template <typename T>
void bias_add_forward_cuda(const EltParams<T>& p) {
  if (p.cols <= 0) return;
  const bool packed = p.cols % kVec<T> == 0 && cuda::aligned16(p.a, p.b, p.out);
  CLOZE_LAUNCH("biasAdd", bias_add_kernel<T>, pack_blocks<T>(packed, p.n), cuda::kThreads, 0, p.a, p.b, p.out, p.n,
               p.cols, packed);
}

template <typename T>
void sum_rows_cuda(const EltParams<T>& p) {
  if (p.cols <= 0) return;
  cuda::column_sums<1, T>(p.n / p.cols, p.cols, RowTerm<T>{p.a, p.cols}, p.out, static_cast<T*>(nullptr), "sumRows");
}

template <typename T>
void sum_all_cuda(const EltParams<T>& p) {
  cuda::sum_to_scalar(p.a, p.n, p.alpha, p.out, "sum");
}

template <typename T>
void fill_scaled_cuda(const EltParams<T>& p) {
  if (p.n == 0) return;
  CLOZE_LAUNCH("reduceBackward", fill_scaled_kernel<T>, cuda::blocks_for(p.n), cuda::kThreads, 0, p.g, p.alpha, p.out,
               p.n);
}

template <typename T>
void act_forward_cuda(Act act, const EltParams<T>& p) {
  const bool packed = cuda::aligned16(p.a, p.out);
  with_act(act, [&](auto A) {
    constexpr auto kernel = act_forward_kernel<decltype(A)::value, T>;
    CLOZE_LAUNCH(act_name(act, false), kernel, pack_blocks<T>(packed, p.n), cuda::kThreads, 0, p.a, p.out, p.n, packed);
  });
}

template <typename T>
void act_backward_cuda(Act act, const EltParams<T>& p) {
  const bool packed = cuda::aligned16(p.g, p.a, p.out);
  with_act(act, [&](auto A) {
    constexpr auto kernel = act_backward_kernel<decltype(A)::value, T>;
    CLOZE_LAUNCH(act_name(act, true), kernel, pack_blocks<T>(packed, p.n), cuda::kThreads, 0, p.g, p.a, p.out, p.n,
                 packed);
  });
}

#define CLOZE_INST(T)                                                   \
  template void binary_forward_cuda<T>(BinaryOp, const EltParams<T>&); \
  template void mul_backward_cuda<T>(const EltParams<T>&);             \
  template void scale_cuda<T>(const EltParams<T>&);                    \
  template void axpy_cuda<T>(const EltParams<T>&);                     \
  template void bias_add_forward_cuda<T>(const EltParams<T>&);         \
  template void sum_rows_cuda<T>(const EltParams<T>&);                 \
  template void sum_all_cuda<T>(const EltParams<T>&);                  \
  template void fill_scaled_cuda<T>(const EltParams<T>&);              \
  template void act_forward_cuda<T>(Act, const EltParams<T>&);         \
  template void act_backward_cuda<T>(Act, const EltParams<T>&);
CLOZE_INST(float)
CLOZE_INST(bf16)
#undef CLOZE_INST

}  // namespace cloze
