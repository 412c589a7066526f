// Dense 2-D convolution and its transpose, NCHW, PyTorch weight layouts.
//
// Both ops are described by one geometry. The "image" side is the tensor that
// im2col unfolds (conv2d's input, convTranspose2d's output); the "position"
// side has one column per kernel placement (conv2d's output, convTranspose2d's
// input). With M_g the weight of group g seen as [cq/groups, ci/groups·kh·kw]:
//   conv2d:          pos[b]   = M · unfold(image[b])        (+ bias on pos)
//   convTranspose2d: image[b] = fold(Mᵀ · pos[b])           (+ bias on image)
// so each op's input gradient is the other op's forward, and both weight
// gradients are Σ_b pos[b] · unfold(image[b])ᵀ.
#pragma once
#include <cstdint>

namespace cloze {

struct ConvGeom {
  int64_t B = 0, groups = 1;
  int64_t ci = 0, ih = 0, iw = 0;  // image side: channels, height, width
  int64_t cq = 0, oh = 0, ow = 0;  // position side: channels, height, width
  int64_t kh = 1, kw = 1, stride = 1, pad = 0;
};

// Positions per image dimension for an image of size n: ⌊(n + 2p − k)/s⌋ + 1,
// or 0 when the kernel does not fit in the padded image.
inline int64_t conv_out_size(int64_t n, int64_t k, int64_t s, int64_t p) {
  return n + 2 * p < k ? 0 : (n + 2 * p - k) / s + 1;
}

template <typename T>
struct ConvParams {
  ConvGeom g;
  const T* w = nullptr;     // [cq, ci/groups, kh, kw] as laid out by PyTorch for either op
  const T* bias = nullptr;  // conv2d: [cq]; convTranspose2d: [ci]; may be null
  const T* x = nullptr;     // forward input, and saved input for backward
  T* y = nullptr;           // forward output
  const T* dy = nullptr;    // backward: gradient of the output
  T* dx = nullptr;          // backward outputs, null where not wanted; dx must be zero-filled
  T* dw = nullptr;
  T* db = nullptr;
};

// conv2d: x [B, ci, ih, iw] → y [B, cq, oh, ow]. y is written in full.
template <typename T> void conv2d_forward_cpu(const ConvParams<T>& p);
template <typename T> void conv2d_backward_cpu(const ConvParams<T>& p);
// convTranspose2d: x [B, cq, oh, ow] → y [B, ci, ih, iw]; y must be zero-filled.
template <typename T> void conv_transpose2d_forward_cpu(const ConvParams<T>& p);
template <typename T> void conv_transpose2d_backward_cpu(const ConvParams<T>& p);

// The same ops on CUDA (cuda/conv.cu; T = float or bf16, pointers on the
// device, on the current stream). Every output is written in full, so none
// needs zero-filling, and dw/db are written even when B = 0.
template <typename T> void conv2d_forward_cuda(const ConvParams<T>& p);
template <typename T> void conv2d_backward_cuda(const ConvParams<T>& p);
template <typename T> void conv_transpose2d_forward_cuda(const ConvParams<T>& p);
template <typename T> void conv_transpose2d_backward_cuda(const ConvParams<T>& p);

}  // namespace cloze
