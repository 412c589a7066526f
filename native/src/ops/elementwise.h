// Elementwise ops, bias add, reductions and activations. Shapes are flattened
// by the binding: n = element count, [rows, cols] for row-wise ops.
#pragma once
#include <cstdint>

namespace cloze {

enum class BinaryOp { Add, Mul };
// Relu6 = min(max(x, 0), 6) (SparK's decoder); its gradient passes only for 0 < x < 6, as torch's hardtanh.
enum class Act { Gelu, Relu, Relu6, Tanh };

template <typename T>
struct EltParams {
  int64_t n = 0;          // elements (or rows·cols)
  int64_t cols = 0;       // row width for bias ops
  const T* a = nullptr;
  const T* b = nullptr;
  const T* g = nullptr;   // upstream gradient
  T* out = nullptr;
  T* out2 = nullptr;      // second output (mul backward: db)
  double alpha = 1.0;
};

template <typename T> void binary_forward_cpu(BinaryOp op, const EltParams<T>& p);  // out = a op b
template <typename T> void mul_backward_cpu(const EltParams<T>& p);                   // out = g·b, out2 = g·a
template <typename T> void scale_cpu(const EltParams<T>& p);                          // out = alpha·a
template <typename T> void axpy_cpu(const EltParams<T>& p);                           // out += alpha·a
template <typename T> void bias_add_forward_cpu(const EltParams<T>& p);               // out[r,c] = a[r,c] + b[c]
template <typename T> void sum_rows_cpu(const EltParams<T>& p);                       // out[c] = Σ_r a[r,c]
template <typename T> double sum_all_cpu(const EltParams<T>& p);                      // Σ a, fixed order
template <typename T> void fill_cpu(const EltParams<T>& p);                           // out = alpha
template <typename T> void act_forward_cpu(Act act, const EltParams<T>& p);           // out = f(a)
template <typename T> void act_backward_cpu(Act act, const EltParams<T>& p);          // out = g·f'(a)

// CUDA (T = float or bf16, device pointers, fp32 arithmetic). The reductions
// leave their result on the device: no host sync.
template <typename T> void binary_forward_cuda(BinaryOp op, const EltParams<T>& p);
template <typename T> void mul_backward_cuda(const EltParams<T>& p);
template <typename T> void scale_cuda(const EltParams<T>& p);
template <typename T> void axpy_cuda(const EltParams<T>& p);
template <typename T> void bias_add_forward_cuda(const EltParams<T>& p);
template <typename T> void sum_rows_cuda(const EltParams<T>& p);      // fixed order for a given shape
template <typename T> void sum_all_cuda(const EltParams<T>& p);       // out[0] = Σ a / alpha (1: sum, n: mean), fixed order, fp64
template <typename T> void fill_scaled_cuda(const EltParams<T>& p);   // out = g[0]·alpha (g a device scalar)
template <typename T> void act_forward_cuda(Act act, const EltParams<T>& p);
template <typename T> void act_backward_cuda(Act act, const EltParams<T>& p);

}  // namespace cloze
