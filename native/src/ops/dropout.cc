#include "dropout.h"

#include <cstring>

#include "../core/microkernel.h"
#include "../core/philox.h"
#include "../core/threadpool.h"

namespace cloze {

namespace {
constexpr int kGroup = 16;  // Philox blocks drawn together: 64 elements

// kGroup Philox4x32-10 blocks (ctr_lo = blk0 … blk0 + kGroup − 1) with the same
// arithmetic as philox4x32, one block per 64-bit vector lane (a 32×32→64-bit product
// per lane; the scalar version made dropout 6% of a bert-mini MLM step).
// u[4·j + l] is lane l of block blk0 + j: element order.
typedef uint64_t U64V __attribute__((vector_size(kVecBytes)));
constexpr int kLanes = kVecBytes / 8;
static_assert(kGroup % kLanes == 0, "a group is whole vectors");

inline void philox_group(uint64_t seed, uint64_t ctr_hi, uint64_t blk0, uint32_t* __restrict u) {
  constexpr uint64_t kLow = 0xFFFFFFFFull;
  U64V lane;
  for (int j = 0; j < kLanes; j++) lane[j] = static_cast<uint64_t>(j);
  for (int v = 0; v < kGroup / kLanes; v++) {
    const U64V lo = lane + (blk0 + static_cast<uint64_t>(v * kLanes));
    U64V c0 = lo & kLow, c1 = lo >> 32;
    U64V c2 = c0 * 0 + (ctr_hi & kLow), c3 = c0 * 0 + (ctr_hi >> 32);
    uint64_t k0 = seed & kLow, k1 = seed >> 32;
    for (int r = 0; r < 10; r++) {
      const U64V p0 = c0 * 0xD2511F53ull, p1 = c2 * 0xCD9E8D57ull;
      const U64V n0 = (p1 >> 32) ^ c1 ^ k0;
      const U64V n2 = (p0 >> 32) ^ c3 ^ k1;
      c1 = p1 & kLow;
      c3 = p0 & kLow;
      c0 = n0;
      c2 = n2;
      k0 = (k0 + 0x9E3779B9u) & kLow;
      k1 = (k1 + 0xBB67AE85u) & kLow;
    }
    // Element order: block j's four words c0..c3 consecutive. (c0 | c1 << 32) puts c0 in a 64-bit lane's low
    // word (little-endian), so interleaving those lanes with (c2 | c3 << 32)'s gives the words in order, two
    // vector stores per group instead of one lane extraction per word (which had cost as much as the rounds).
    const U64V a = c0 | (c1 << 32), b = c2 | (c3 << 32);
    uint32_t* o = u + 4 * v * kLanes;
    U64V lo_half, hi_half;
#if defined(__clang__)
    for (int j = 0; j < kLanes / 2; j++) {
      lo_half[2 * j] = a[j];
      lo_half[2 * j + 1] = b[j];
      hi_half[2 * j] = a[kLanes / 2 + j];
      hi_half[2 * j + 1] = b[kLanes / 2 + j];
    }
#else
    U64V mlo, mhi;  // constants after folding: one two-input permute each
    for (int j = 0; j < kLanes / 2; j++) {
      mlo[2 * j] = static_cast<uint64_t>(j);
      mlo[2 * j + 1] = static_cast<uint64_t>(kLanes + j);
      mhi[2 * j] = static_cast<uint64_t>(kLanes / 2 + j);
      mhi[2 * j + 1] = static_cast<uint64_t>(kLanes + kLanes / 2 + j);
    }
    lo_half = __builtin_shuffle(a, b, mlo);
    hi_half = __builtin_shuffle(a, b, mhi);
#endif
    std::memcpy(o, &lo_half, sizeof lo_half);
    std::memcpy(o + 2 * kLanes, &hi_half, sizeof hi_half);
  }
}
}  // namespace

// dropoutAdd adds the residual to the dropped value, and must round as the chain add(residual, dropout(x)) does:
// the product, then the sum. GCC contracts a·b + c into one FMA in C++ by default (-ffp-contract=fast, even with
// -std=c++17); it did so in this function's -march=haswell build and in an alias-check fallback of the AVX-512
// one. So contraction is off here (the lambda's body is inside the region).
#if !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
template <typename T>
void dropout_apply_cpu(const DropoutParams<T>& p) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  const float drop = static_cast<float>(p.p);
  const T keep_scale = p.p >= 1.0 ? T(0) : static_cast<T>(1.0 / (1.0 - p.p));
  // One Philox call yields four uniforms: global element g = offset + i uses lane g%4 of block g/4.
  // The loop runs over groups of kGroup global blocks, aligned to multiples of kGroup, that cover
  // [offset, offset + n): a slice draws the full call's bits, and a group's elements outside the
  // range are skipped.
  constexpr uint64_t kElems = 4 * kGroup;
  const uint64_t first = p.offset / kElems, last = (p.offset + static_cast<uint64_t>(p.n) + kElems - 1) / kElems;
  const int64_t groups = p.n == 0 ? 0 : static_cast<int64_t>(last - first);
  parallel_range(groups, 256, [&](int64_t b, int64_t e) {
    alignas(64) uint32_t u[kElems];
    for (int64_t grp = b; grp < e; grp++) {
      const uint64_t g0 = (first + static_cast<uint64_t>(grp)) * kElems;
      philox_group(p.seed, p.step, g0 / 4, u);
      // Elements [lo, hi) of this group lie inside the call's range.
      const uint64_t lo = g0 < p.offset ? p.offset - g0 : 0;
      const uint64_t end = p.offset + static_cast<uint64_t>(p.n);
      const uint64_t hi = g0 + kElems > end ? end - g0 : kElems;
      // Where element k of the group is in x and out (negative only for k < lo, never read).
      const int64_t base = static_cast<int64_t>(g0) - static_cast<int64_t>(p.offset);
      if (lo == 0 && hi == kElems) {
        const T* __restrict x = p.x + base;
        T* __restrict out = p.out + base;
        // Branch-free (both sides computed), so that the loop vectorises.
        if (p.residual) {
          // residual + the dropped value, rounded as the add kernel rounds it (no contraction: see above). Local
          // constants and ivdep (out is a fresh tensor) leave one vectorised loop, without an alias-check fallback.
          const T* __restrict r = p.residual + base;
          const T ks = keep_scale;
          const float dr = drop;
#pragma GCC ivdep
          for (int k = 0; k < static_cast<int>(kElems); k++) {
            const T kept = x[k] * ks;
            out[k] = r[k] + (philox_uniform(u[k]) >= dr ? kept : T(0));
          }
        } else {
          for (int k = 0; k < static_cast<int>(kElems); k++) {
            const T kept = x[k] * keep_scale;
            out[k] = philox_uniform(u[k]) >= drop ? kept : T(0);
          }
        }
      } else {
        for (uint64_t k = lo; k < hi; k++) {
          const int64_t i = base + static_cast<int64_t>(k);
          const T d = philox_uniform(u[k]) >= drop ? p.x[i] * keep_scale : T(0);
          if (!p.residual) {
            p.out[i] = d;
            continue;
          }
          p.out[i] = p.residual[i] + d;
        }
      }
    }
  });
}

#if !defined(__clang__)
#pragma GCC pop_options
#endif

template void dropout_apply_cpu<float>(const DropoutParams<float>&);
template void dropout_apply_cpu<double>(const DropoutParams<double>&);

}  // namespace cloze
