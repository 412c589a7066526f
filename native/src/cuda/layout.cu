// NCHW ↔ NHWC on the device: a batched transpose through a 32×33 shared tile
// (the extra column keeps the column reads free of bank conflicts), so both
// the reads and the writes are coalesced.
#include "../ops/layout.h"
#include "common.cuh"

namespace cloze {

namespace {

constexpr int kTile = 32, kTileRows = 8;

// in [B, R, C] → out [B, C, R]. blockIdx.x enumerates (row tile, column tile);
// blockIdx.y walks the batch (grid-stride, the y extent being capped).
template <typename T>
__global__ void transpose_kernel(const T* in, T* out, int64_t B, int64_t R, int64_t C, int64_t col_tiles) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t t = blockIdx.x;
  const int64_t r0 = (t / col_tiles) * kTile, c0 = (t % col_tiles) * kTile;
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const T* src = in + b * R * C;
    T* dst = out + b * R * C;
    for (int j = ty; j < kTile; j += kTileRows) {
      const int64_t r = r0 + j, c = c0 + tx;
      if (r < R && c < C) tile[j][tx] = cuda::ld(src, r * C + c);
    }
    __syncthreads();
    for (int j = ty; j < kTile; j += kTileRows) {
      const int64_t c = c0 + j, r = r0 + tx;
      if (r < R && c < C) cuda::st(dst, c * R + r, tile[tx][j]);
    }
    __syncthreads();  // the next batch item overwrites the tile
  }
}

template <typename T>
void transpose(const T* in, T* out, int64_t B, int64_t R, int64_t C, const char* op) {
  if (B == 0 || R == 0 || C == 0) return;
  const int64_t row_tiles = (R + kTile - 1) / kTile, col_tiles = (C + kTile - 1) / kTile;
  const int64_t tiles = row_tiles * col_tiles;
  if (tiles > 0x7fffffff) fail(ErrCode::Shape, op, "tensor too large for one transpose launch");
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(B < 65535 ? B : 65535));
  CLOZE_LAUNCH(op, transpose_kernel<T>, grid, dim3(kTile, kTileRows), 0, in, out, B, R, C, col_tiles);
}

}  // namespace

template <typename T>
void to_channels_last_cuda(const LayoutParams<T>& p) {
  transpose(p.in, p.out, p.B, p.C, p.HW, "toChannelsLast");
}

template <typename T>
void to_channels_first_cuda(const LayoutParams<T>& p) {
  transpose(p.in, p.out, p.B, p.HW, p.C, "toChannelsFirst");
}

template void to_channels_last_cuda<float>(const LayoutParams<float>&);
template void to_channels_last_cuda<bf16>(const LayoutParams<bf16>&);
template void to_channels_first_cuda<float>(const LayoutParams<float>&);
template void to_channels_first_cuda<bf16>(const LayoutParams<bf16>&);

}  // namespace cloze
