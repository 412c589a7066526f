// Image batch builder for masked image modeling: one fused pass from a uint8
// image set to a normalised float batch. This is a data op: nothing upstream of
// it is trainable, so it has no backward.
//
// Shapes: images uint8 [N, C, H, W]; indices [B]; boxes [B, 4] = (y0, x0, h, w)
// in source pixels (floats; a box may reach outside the image); flip [B];
// mean, std [C]; out [B, C, OH, OW]. For each b, c, i, j:
//   sy = y0 + (i + 0.5)·h/OH − 0.5, sx = x0 + (j' + 0.5)·w/OW − 0.5
// with j' = OW − 1 − j when flip[b] (a horizontal flip of the output), else j;
// sy, sx are clamped to [0, H − 1] and [0, W − 1] and sampled bilinearly
// (half-pixel centres, PyTorch's align_corners=False). The value v ∈ [0, 255]
// is then normalised as (v / 255 − mean[c]) / std[c].
//
// Two deliberate differences from torchvision's resized_crop: coordinates clamp
// to the image, not to the crop, so a crop edge blends with the pixel just
// outside it; and there is no antialiasing when a crop shrinks (RandomResizedCrop
// on small images mostly enlarges, where antialiasing does nothing).
#pragma once
#include <cstdint>

namespace cloze {

template <typename T>
struct ImageBatchParams {
  int64_t N = 0, C = 0, H = 0, W = 0;  // source set, H, W ≥ 1
  int64_t B = 0, OH = 0, OW = 0;       // batch and output size, OH, OW ≥ 1
  const uint8_t* images = nullptr;     // [N, C, H, W]
  const int32_t* indices = nullptr;    // [B], validated in [0, N)
  const T* boxes = nullptr;            // [B, 4], validated finite with h, w > 0
  const uint8_t* flip = nullptr;       // [B], 0 or 1
  const T* mean = nullptr;             // [C]
  const T* std = nullptr;              // [C], validated finite and > 0
  T* out = nullptr;                    // [B, C, OH, OW]
};

template <typename T> void image_batch_cpu(const ImageBatchParams<T>& p);
template <typename T> void image_batch_cuda(const ImageBatchParams<T>& p);

}  // namespace cloze
