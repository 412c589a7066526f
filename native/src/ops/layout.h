// Layout changes between NCHW (convolutions) and NHWC (per-pixel LayerNorm and
// pointwise Linear, as ConvNeXt applies them). Each is the other's backward.
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct LayoutParams {
  int64_t B = 0, C = 0, HW = 0;
  const T* in = nullptr;  // [B, C, HW] for to_channels_last, [B, HW, C] for to_channels_first
  T* out = nullptr;
};
template <typename T> void to_channels_last_cpu(const LayoutParams<T>& p);
template <typename T> void to_channels_first_cpu(const LayoutParams<T>& p);
template <typename T> void to_channels_last_cuda(const LayoutParams<T>& p);   // T = float or bf16
template <typename T> void to_channels_first_cuda(const LayoutParams<T>& p);

}  // namespace cloze
