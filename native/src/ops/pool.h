// Pooling over x [B, C, H, W] (max, average, global average) and the
// nearest-neighbour mask resampling that SparK's masked-dense encoder applies
// after every op. Windows follow PyTorch (floor mode); max pooling pads with
// −∞ and average pooling with zeros.
#pragma once
#include <cstdint>

namespace cloze {

struct PoolGeom {
  int64_t B = 0, C = 0, H = 0, W = 0;
  int64_t k = 1, stride = 1, pad = 0;
  int64_t oh = 0, ow = 0;
};

template <typename T>
struct PoolParams {
  PoolGeom g;
  bool count_include_pad = true;  // average pooling: divide by k² (PyTorch's default) or by the pixels inside
  const T* x = nullptr;           // [B, C, H, W]
  T* y = nullptr;                 // [B, C, oh, ow]
  int32_t* argmax = nullptr;      // max forward: [B, C, oh, ow], index into the H·W plane
  const int32_t* argmax_in = nullptr;  // max backward
  const T* dy = nullptr;          // [B, C, oh, ow]
  T* dx = nullptr;                // [B, C, H, W], zero-filled
};

// The first maximum in row-major window order wins; a NaN wins over numbers.
template <typename T> void maxpool_forward_cpu(const PoolParams<T>& p);
template <typename T> void maxpool_backward_cpu(const PoolParams<T>& p);
template <typename T> void avgpool_forward_cpu(const PoolParams<T>& p);
template <typename T> void avgpool_backward_cpu(const PoolParams<T>& p);
// y [B, C] = mean of each plane; backward spreads dy / (H·W).
template <typename T> void global_avgpool_forward_cpu(const PoolParams<T>& p);
template <typename T> void global_avgpool_backward_cpu(const PoolParams<T>& p);

// y = x where the mask (1 = active), upsampled by nearest repetition of
// fy × fx, is 1, and exactly 0 elsewhere (even where x is not finite).
template <typename T>
struct ApplyMaskParams {
  int64_t B = 0, C = 0, H = 0, W = 0, fy = 1, fx = 1;
  const T* x = nullptr;           // [B, C, H, W]
  const uint8_t* mask = nullptr;  // [B, H/fy, W/fx]
  T* y = nullptr;
};
template <typename T> void apply_mask_cpu(const ApplyMaskParams<T>& p);

// out [B, h·f, w·f] = mask [B, h, w] repeated f × f.
void upsample_mask_cpu(const uint8_t* mask, int64_t B, int64_t h, int64_t w, int64_t f, uint8_t* out);

// The same ops on CUDA (cuda/pool.cu; T = float or bf16, device pointers, the
// current stream). dx need not be zero-filled: every backward writes it in full.
// The max backward routes each plane in output order, as the CPU does.
template <typename T> void maxpool_forward_cuda(const PoolParams<T>& p);
template <typename T> void maxpool_backward_cuda(const PoolParams<T>& p);
template <typename T> void avgpool_forward_cuda(const PoolParams<T>& p);
template <typename T> void avgpool_backward_cuda(const PoolParams<T>& p);
template <typename T> void global_avgpool_forward_cuda(const PoolParams<T>& p);
template <typename T> void global_avgpool_backward_cuda(const PoolParams<T>& p);
template <typename T> void apply_mask_cuda(const ApplyMaskParams<T>& p);
void upsample_mask_cuda(const uint8_t* mask, int64_t B, int64_t h, int64_t w, int64_t f, uint8_t* out);

// Validation of device-resident masks and indices for the bindings: the first
// position in [0, n) holding a value above 1 (masks) or outside [0, S)
// (indices), with that value in *value, or −1. Each waits for the stream (an
// 8-byte read-back; one more only when a bad value is found).
int64_t mask_first_invalid_cuda(const uint8_t* m, int64_t n, int64_t* value, const char* op);
int64_t index_first_invalid_cuda(const int32_t* idx, int64_t n, int64_t S, int64_t* value, const char* op);

}  // namespace cloze
