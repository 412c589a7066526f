// GeGLU on the device, exact erf GELU in fp32: output element (r, i) reads the
// gate x[r, i] and the value x[r, I + i]. Memory-bound, so where I % kVec == 0
// and every pointer is 16-byte aligned, a thread takes one 16-byte pack of
// kVec outputs (vec.cuh), whose gates and values are each a whole pack of x
// (the two halves of a row are separate contiguous runs); otherwise one
// thread per output element. Both paths call the same per-element function,
// so they give the same bits.
#include "../ops/geglu.h"
#include "common.cuh"
#include "gelu.cuh"
#include "vec.cuh"

namespace cloze {

namespace {

using cuda::kVec;

__device__ __forceinline__ float geglu_f(float a, float b) { return a * cuda::normal_cdf_f(a) * b; }

// d/da and d/db of g·GELU(a)·b.
__device__ __forceinline__ void geglu_grad_f(float a, float b, float gk, float* da, float* db) {
  const float c = cuda::normal_cdf_f(a);
  *da = gk * b * (c + a * cuda::normal_pdf_f(a));
  *db = gk * a * c;
}

// Packs per row of out where the pack path is on (I % kVec == 0), else 0: every element then goes
// through the scalar loop, which starts at element rows·Ip·kVec.
template <typename T>
__device__ __forceinline__ int64_t row_packs(bool packed, int64_t I) { return packed ? I / kVec<T> : 0; }

template <typename T>
__global__ void geglu_forward_kernel(const T* x, T* out, int64_t rows, int64_t I, bool packed) {
  constexpr int V = kVec<T>;
  const int64_t Ip = row_packs<T>(packed, I), np = rows * Ip;
  CLOZE_GRID_STRIDE(j, np) {
    // Output pack j = (r, ip); row r of x is 2·Ip packs, gates first.
    const int64_t r = j / Ip, ip = j - r * Ip, ga = r * 2 * Ip + ip;
    float a[V], b[V];
    cuda::ld_pack(x, ga, a);
    cuda::ld_pack(x, ga + Ip, b);
#pragma unroll
    for (int e = 0; e < V; e++) a[e] = geglu_f(a[e], b[e]);
    cuda::st_pack(out, j, a);
  }
  const int64_t from = np * V;
  CLOZE_GRID_STRIDE(t, rows * I - from) {
    const int64_t k = from + t;
    const int64_t r = k / I, i = k - r * I;
    cuda::st(out, k, geglu_f(cuda::ld(x, r * 2 * I + i), cuda::ld(x, r * 2 * I + I + i)));
  }
}

template <typename T>
__global__ void geglu_backward_kernel(const T* x, const T* g, T* dx, int64_t rows, int64_t I, bool packed) {
  constexpr int V = kVec<T>;
  const int64_t Ip = row_packs<T>(packed, I), np = rows * Ip;
  CLOZE_GRID_STRIDE(j, np) {
    const int64_t r = j / Ip, ip = j - r * Ip, ga = r * 2 * Ip + ip;
    float a[V], b[V], gk[V];
    cuda::ld_pack(x, ga, a);
    cuda::ld_pack(x, ga + Ip, b);
    cuda::ld_pack(g, j, gk);
#pragma unroll
    for (int e = 0; e < V; e++) geglu_grad_f(a[e], b[e], gk[e], &a[e], &b[e]);
    cuda::st_pack(dx, ga, a);
    cuda::st_pack(dx, ga + Ip, b);
  }
  const int64_t from = np * V;
  CLOZE_GRID_STRIDE(t, rows * I - from) {
    const int64_t k = from + t;
    const int64_t r = k / I, i = k - r * I;
    float da, db;
    geglu_grad_f(cuda::ld(x, r * 2 * I + i), cuda::ld(x, r * 2 * I + I + i), cuda::ld(g, k), &da, &db);
    cuda::st(dx, r * 2 * I + i, da);
    cuda::st(dx, r * 2 * I + I + i, db);
  }
}

// Threads worth launching: one per pack where packed, else one per output element.
template <typename T>
unsigned pack_blocks(bool packed, int64_t rows, int64_t I) {
  return cuda::blocks_for(packed ? rows * (I / kVec<T>) : rows * I);
}

}  // namespace

template <typename T>
void geglu_forward_cuda(const GegluParams<T>& p) {
  if (p.rows == 0 || p.inner == 0) return;
  const bool packed = p.inner % kVec<T> == 0 && cuda::aligned16(p.x, p.out);
  CLOZE_LAUNCH("geglu", geglu_forward_kernel<T>, pack_blocks<T>(packed, p.rows, p.inner), cuda::kThreads, 0, p.x,
               p.out, p.rows, p.inner, packed);
}

template <typename T>
void geglu_backward_cuda(const GegluParams<T>& p) {
  if (p.rows == 0 || p.inner == 0) return;
  const bool packed = p.inner % kVec<T> == 0 && cuda::aligned16(p.x, p.dout, p.dx);
  CLOZE_LAUNCH("gegluBackward", geglu_backward_kernel<T>, pack_blocks<T>(packed, p.rows, p.inner), cuda::kThreads, 0,
               p.x, p.dout, p.dx, p.rows, p.inner, packed);
}

template void geglu_forward_cuda<float>(const GegluParams<float>&);
template void geglu_backward_cuda<float>(const GegluParams<float>&);
template void geglu_forward_cuda<bf16>(const GegluParams<bf16>&);
template void geglu_backward_cuda<bf16>(const GegluParams<bf16>&);

}  // namespace cloze
