// Direct kernels of the depthwise conv2d (groups = ci = cq, ConvNeXt's 7×7),
// for conv.cu: there is no GEMM to feed, and im2col would copy each plane
// kh·kw times. T = float or cloze::bf16; all sums in fp32.
#pragma once
#include "../ops/conv.h"

namespace cloze {
namespace cuda {

// y [B, C, oh, ow] = bias + Σ taps, written in full.
template <typename T>
void depthwise_forward(const ConvGeom& g, const T* x, const T* w, const T* bias, T* y, const char* op);
// dx [B, C, ih, iw], written in full.
template <typename T>
void depthwise_dx(const ConvGeom& g, const T* dy, const T* w, T* dx, const char* op);
// dw [C, 1, kh, kw], written in full.
template <typename T>
void depthwise_dw(const ConvGeom& g, const T* x, const T* dy, T* dw, const char* op);

}  // namespace cuda
}  // namespace cloze
