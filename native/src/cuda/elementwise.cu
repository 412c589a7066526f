// Elementwise ops, bias add, reductions and activations on the device. One
// thread per element in grid-stride loops; arithmetic in fp32 whatever the
// storage type. The reductions (sumRows, sum, mean) are atomic-free and fixed
// in order (colsum.cuh, reduce.cuh), so they repeat bit for bit.
#include "../ops/elementwise.h"
#include "colsum.cuh"
#include "common.cuh"
#include "gelu.cuh"
#include "reduce.cuh"

namespace cloze {

namespace {

using cuda::ld;
using cuda::st;

template <typename T>
__global__ void binary_kernel(bool add, const T* a, const T* b, T* out, int64_t n) {
  CLOZE_GRID_STRIDE(i, n) {
    const float x = ld(a, i), y = ld(b, i);
    st(out, i, add ? x + y : x * y);
  }
}

template <typename T>
__global__ void mul_backward_kernel(const T* g, const T* a, const T* b, T* da, T* db, int64_t n) {
  CLOZE_GRID_STRIDE(i, n) {
    const float gi = ld(g, i);
    if (da) st(da, i, gi * ld(b, i));
    if (db) st(db, i, gi * ld(a, i));
  }
}

template <typename T>
__global__ void scale_kernel(const T* a, float s, T* out, int64_t n) {
  CLOZE_GRID_STRIDE(i, n) st(out, i, s * ld(a, i));
}

template <typename T>
__global__ void axpy_kernel(const T* a, float s, T* out, int64_t n) {
  CLOZE_GRID_STRIDE(i, n) st(out, i, ld(out, i) + s * ld(a, i));
}

template <typename T>
__global__ void bias_add_kernel(const T* a, const T* b, T* out, int64_t n, int64_t cols) {
  CLOZE_GRID_STRIDE(i, n) st(out, i, ld(a, i) + ld(b, i % cols));
}

template <typename T>
__global__ void fill_scaled_kernel(const T* g, double alpha, T* out, int64_t n) {
  // As the CPU: the product in double, then one rounding to the storage type.
  const float v = static_cast<float>(static_cast<double>(ld(g, 0)) * alpha);
  CLOZE_GRID_STRIDE(i, n) st(out, i, v);
}

template <typename T>
__global__ void act_forward_kernel(Act act, const T* a, T* out, int64_t n) {
  CLOZE_GRID_STRIDE(i, n) {
    const float x = ld(a, i);
    st(out, i, act == Act::Gelu    ? x * cuda::normal_cdf_f(x)
               : act == Act::Tanh  ? tanhf(x)
               : act == Act::Relu6 ? (x > 0.f ? (x < 6.f ? x : 6.f) : 0.f)
                                   : (x > 0.f ? x : 0.f));
  }
}

template <typename T>
__global__ void act_backward_kernel(Act act, const T* g, const T* a, T* out, int64_t n) {
  CLOZE_GRID_STRIDE(i, n) {
    const float x = ld(a, i), gi = ld(g, i);
    float d;
    if (act == Act::Gelu) {
      d = gi * (cuda::normal_cdf_f(x) + x * cuda::normal_pdf_f(x));
    } else if (act == Act::Tanh) {
      const float y = tanhf(x);
      d = gi * (1.f - y * y);
    } else if (act == Act::Relu6) {
      d = x > 0.f && x < 6.f ? gi : 0.f;
    } else {
      d = x > 0.f ? gi : 0.f;
    }
    st(out, i, d);
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
  CLOZE_LAUNCH(op == BinaryOp::Add ? "add" : "mul", binary_kernel<T>, cuda::blocks_for(p.n), cuda::kThreads, 0,
               op == BinaryOp::Add, p.a, p.b, p.out, p.n);
}

template <typename T>
void mul_backward_cuda(const EltParams<T>& p) {
  if (!p.out && !p.out2) return;
  CLOZE_LAUNCH("mulBackward", mul_backward_kernel<T>, cuda::blocks_for(p.n), cuda::kThreads, 0, p.g, p.a, p.b, p.out,
               p.out2, p.n);
}

template <typename T>
void scale_cuda(const EltParams<T>& p) {
  CLOZE_LAUNCH("scale", scale_kernel<T>, cuda::blocks_for(p.n), cuda::kThreads, 0, p.a, static_cast<float>(p.alpha),
               p.out, p.n);
}

template <typename T>
void axpy_cuda(const EltParams<T>& p) {
  CLOZE_LAUNCH("axpyInPlace", axpy_kernel<T>, cuda::blocks_for(p.n), cuda::kThreads, 0, p.a,
               static_cast<float>(p.alpha), p.out, p.n);
}

template <typename T>
void bias_add_forward_cuda(const EltParams<T>& p) {
  if (p.cols <= 0) return;
  CLOZE_LAUNCH("biasAdd", bias_add_kernel<T>, cuda::blocks_for(p.n), cuda::kThreads, 0, p.a, p.b, p.out, p.n, p.cols);
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
  CLOZE_LAUNCH(act_name(act, false), act_forward_kernel<T>, cuda::blocks_for(p.n), cuda::kThreads, 0, act, p.a, p.out,
               p.n);
}

template <typename T>
void act_backward_cuda(Act act, const EltParams<T>& p) {
  CLOZE_LAUNCH(act_name(act, true), act_backward_kernel<T>, cuda::blocks_for(p.n), cuda::kThreads, 0, act, p.g, p.a,
               p.out, p.n);
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
