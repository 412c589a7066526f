#include "mim_loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/threadpool.h"

namespace cloze {

namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per task

// Σ f(k) over [0, n) in 8 interleaved double lanes joined in a fixed order. One
// accumulator would serialise on the add latency (IEEE order forbids the
// compiler to split it); fixed lanes vectorise and stay deterministic.
template <typename F>
inline double lane_sum(int64_t n, F&& f) {
  constexpr int W = 8;
  double acc[W] = {};
  int64_t k = 0;
  for (; k + W <= n; k += W)
    for (int j = 0; j < W; j++) acc[j] += f(k + j);
  double tail = 0;
  for (; k < n; k++) tail += f(k);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

// t̂ = (t − mean)·inv_std; the identity without normPix.
struct PatchNorm {
  double mean = 0, inv_std = 1;
};

// MAE's reference normalises with target.var(dim=-1), which is torch's
// unbiased variance (divides by P − 1), so we do too; the binding rejects P < 2.
template <typename T>
PatchNorm patch_norm(const T* t, int64_t P, bool norm_pix, double eps) {
  if (!norm_pix) return {};
  const double mean = lane_sum(P, [&](int64_t k) { return static_cast<double>(t[k]); }) / static_cast<double>(P);
  const double v = lane_sum(P, [&](int64_t k) {
                     const double d = static_cast<double>(t[k]) - mean;
                     return d * d;
                   }) /
                   static_cast<double>(P - 1);
  return {mean, 1.0 / std::sqrt(v + eps)};
}

// dℓ/dpred for one element, already scaled by c = dloss / (#masked · P).
inline double patch_elem_grad(PatchLossKind kind, double d, double c) {
  if (kind == PatchLossKind::MSE) return 2.0 * c * d;
  return d > 0 ? c : (d < 0 ? -c : 0.0);  // L1's subgradient at 0 is 0
}

template <typename T>
void fill_zero(T* p, int64_t n) {
  if (p) std::fill(p, p + n, T(0));
}

}  // namespace

template <typename T>
double masked_patch_loss_forward_cpu(const MaskedPatchLossParams<T>& p) {
  const int64_t R = p.B * p.L, P = p.P;
  std::vector<double> row(static_cast<size_t>(R));
  parallel_range(R, std::max<int64_t>(1, kGrain / std::max<int64_t>(P, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const T* __restrict pr = p.pred + r * P;
      const T* __restrict t = p.target + r * P;
      const PatchNorm n = patch_norm(t, P, p.norm_pix, p.eps);
      auto diff = [&](int64_t k) { return static_cast<double>(pr[k]) - (static_cast<double>(t[k]) - n.mean) * n.inv_std; };
      const double acc = p.kind == PatchLossKind::MSE ? lane_sum(P, [&](int64_t k) { const double d = diff(k); return d * d; })
                                                      : lane_sum(P, [&](int64_t k) { return std::abs(diff(k)); });
      row[r] = acc / static_cast<double>(P);
      p.per_patch[r] = static_cast<T>(row[r]);
    }
  });
  double total = 0;
  for (int64_t r = 0; r < R; r++)
    if (p.mask[r]) total += row[r];
  return total;
}

// With g = dloss/dt̂ and s = sqrt(var + eps), var = Σ(t − mean)²/(P − 1):
//   dloss/dt_k = (g_k − mean(g))/s − t̂_k · Σ_i g_i t̂_i / ((P − 1)·s)
template <typename T>
void masked_patch_loss_backward_cpu(const MaskedPatchLossParams<T>& p) {
  const int64_t R = p.B * p.L, P = p.P;
  const double c = p.grad_scale / static_cast<double>(P);
  parallel_range(R, std::max<int64_t>(1, kGrain / std::max<int64_t>(P, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      T* __restrict dp = p.dpred ? p.dpred + r * P : nullptr;
      T* __restrict dt = p.dtarget ? p.dtarget + r * P : nullptr;
      if (!p.mask[r]) {
        fill_zero(dp, P);
        fill_zero(dt, P);
        continue;
      }
      const T* __restrict pr = p.pred + r * P;
      const T* __restrict t = p.target + r * P;
      const PatchNorm n = patch_norm(t, P, p.norm_pix, p.eps);
      double sum_g = 0, sum_gt = 0;  // Σ dt̂ and Σ dt̂·t̂, for the normalisation's backward
      for (int64_t k = 0; k < P; k++) {
        const double th = (static_cast<double>(t[k]) - n.mean) * n.inv_std;
        const double g = patch_elem_grad(p.kind, static_cast<double>(pr[k]) - th, c);
        if (dp) dp[k] = static_cast<T>(g);
        if (dt && !p.norm_pix) dt[k] = static_cast<T>(-g);
        sum_g -= g;
        sum_gt -= g * th;
      }
      if (!dt || !p.norm_pix) continue;
      const double mean_g = sum_g / static_cast<double>(P), proj = sum_gt / static_cast<double>(P - 1);
      for (int64_t k = 0; k < P; k++) {
        const double th = (static_cast<double>(t[k]) - n.mean) * n.inv_std;
        const double g = -patch_elem_grad(p.kind, static_cast<double>(pr[k]) - th, c);
        dt[k] = static_cast<T>(n.inv_std * (g - mean_g - th * proj));
      }
    }
  });
}

namespace {

// Per image: sums of the unit vectors x̂ over masked (sm) and visible (sv) tokens.
struct SideSums {
  std::vector<double> sm, sv;
  int64_t nm = 0, nv = 0;
  bool counted() const { return nm > 0 && nv > 0; }
  double scale() const { return 1.0 / (static_cast<double>(nm) * static_cast<double>(nv)); }
};

template <typename T>
double row_norm(const T* x, int64_t D) {
  return std::sqrt(lane_sum(D, [&](int64_t k) { return static_cast<double>(x[k]) * static_cast<double>(x[k]); }));
}

template <typename T>
SideSums side_sums(const MaskedCosineParams<T>& p, int64_t b) {
  const int64_t L = p.L, D = p.D;
  SideSums s;
  s.sm.assign(static_cast<size_t>(D), 0.0);
  s.sv.assign(static_cast<size_t>(D), 0.0);
  for (int64_t i = 0; i < L; i++) {
    const T* xi = p.x + (b * L + i) * D;
    const double inv = 1.0 / std::max(row_norm(xi, D), p.eps);
    const bool masked = p.mask[b * L + i] != 0;
    double* dst = masked ? s.sm.data() : s.sv.data();
    (masked ? s.nm : s.nv)++;
    for (int64_t k = 0; k < D; k++) dst[k] += static_cast<double>(xi[k]) * inv;
  }
  return s;
}

}  // namespace

template <typename T>
double masked_cosine_forward_cpu(const MaskedCosineParams<T>& p) {
  std::vector<double> c(static_cast<size_t>(p.B), 0.0);
  std::vector<uint8_t> counted(static_cast<size_t>(p.B), 0);
  ThreadPool::get().parallel_for(p.B, [&](int64_t b, int) {
    const SideSums s = side_sums(p, b);
    if (!s.counted()) return;
    c[b] = lane_sum(p.D, [&](int64_t k) { return s.sm[k] * s.sv[k]; }) * s.scale();
    counted[b] = 1;
  });
  double total = 0;
  for (int64_t b = 0; b < p.B; b++)
    if (counted[b]) total += c[b];
  return total;
}

// c = Sm·Sv/(nm·nv), so dc/dx̂_i = Sv/(nm·nv) for a masked token and Sm/(nm·nv)
// for a visible one. Through x̂ = x/max(‖x‖, eps): dx = (u − x̂(x̂·u))/‖x‖ when
// ‖x‖ >= eps (torch's clamp_min passes the gradient at equality), else u/eps.
template <typename T>
void masked_cosine_backward_cpu(const MaskedCosineParams<T>& p) {
  const int64_t L = p.L, D = p.D;
  ThreadPool::get().parallel_for(p.B, [&](int64_t b, int) {
    T* dxb = p.dx + b * L * D;
    const SideSums s = side_sums(p, b);
    if (!s.counted()) {
      fill_zero(dxb, L * D);
      return;
    }
    const double f = p.grad_scale * s.scale();
    for (int64_t i = 0; i < L; i++) {
      const T* xi = p.x + (b * L + i) * D;
      T* dxi = dxb + i * D;
      const double* other = p.mask[b * L + i] ? s.sv.data() : s.sm.data();
      const double n = row_norm(xi, D);
      if (n >= p.eps) {
        const double dot = lane_sum(D, [&](int64_t k) { return static_cast<double>(xi[k]) / n * f * other[k]; });  // x̂·u
        for (int64_t k = 0; k < D; k++) dxi[k] = static_cast<T>((f * other[k] - static_cast<double>(xi[k]) / n * dot) / n);
      } else {
        for (int64_t k = 0; k < D; k++) dxi[k] = static_cast<T>(f * other[k] / p.eps);
      }
    }
  });
}

namespace {

template <typename T>
std::vector<int64_t> masked_positions(const RankingLossParams<T>& p, int64_t b) {
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < p.L; i++)
    if (p.mask[b * p.L + i]) idx.push_back(i);
  return idx;
}

// 1 when t_j > t_i, 0 when less, −1 for a tie (no label: the pair is skipped).
inline double pair_label(double ti, double tj) { return tj > ti ? 1.0 : (tj < ti ? 0.0 : -1.0); }

// max(z, 0) − z·y + log(1 + e^−|z|): never exponentiates a positive number.
inline double bce_with_logits(double z, double y) { return std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::abs(z))); }

inline double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

}  // namespace

template <typename T>
double ranking_loss_forward_cpu(const RankingLossParams<T>& p) {
  std::vector<double> part(static_cast<size_t>(p.B), 0.0);
  ThreadPool::get().parallel_for(p.B, [&](int64_t b, int) {
    const std::vector<int64_t> idx = masked_positions(p, b);
    const T* pr = p.pred + b * p.L;
    const T* tg = p.target + b * p.L;
    const int64_t M = static_cast<int64_t>(idx.size());
    double acc = 0;
    for (int64_t a = 0; a < M; a++) {
      const double pi = static_cast<double>(pr[idx[a]]), ti = static_cast<double>(tg[idx[a]]);
      for (int64_t c = a + 1; c < M; c++) {
        const double y = pair_label(ti, static_cast<double>(tg[idx[c]]));
        if (y >= 0) acc += bce_with_logits(static_cast<double>(pr[idx[c]]) - pi, y);
      }
    }
    part[b] = acc;
  });
  double total = 0;
  for (int64_t b = 0; b < p.B; b++) total += part[b];
  return total;
}

// d BCE / dz = σ(z) − y, and z = pred_j − pred_i.
template <typename T>
void ranking_loss_backward_cpu(const RankingLossParams<T>& p) {
  ThreadPool::get().parallel_for(p.B, [&](int64_t b, int) {
    const std::vector<int64_t> idx = masked_positions(p, b);
    const T* pr = p.pred + b * p.L;
    const T* tg = p.target + b * p.L;
    std::vector<double> acc(static_cast<size_t>(p.L), 0.0);
    const int64_t M = static_cast<int64_t>(idx.size());
    for (int64_t a = 0; a < M; a++) {
      const double pi = static_cast<double>(pr[idx[a]]), ti = static_cast<double>(tg[idx[a]]);
      for (int64_t c = a + 1; c < M; c++) {
        const double y = pair_label(ti, static_cast<double>(tg[idx[c]]));
        if (y < 0) continue;
        const double g = sigmoid(static_cast<double>(pr[idx[c]]) - pi) - y;
        acc[idx[c]] += g;
        acc[idx[a]] -= g;
      }
    }
    T* d = p.dpred + b * p.L;
    for (int64_t i = 0; i < p.L; i++) d[i] = static_cast<T>(acc[i] * p.grad_scale);
  });
}

template double masked_patch_loss_forward_cpu<float>(const MaskedPatchLossParams<float>&);
template double masked_patch_loss_forward_cpu<double>(const MaskedPatchLossParams<double>&);
template void masked_patch_loss_backward_cpu<float>(const MaskedPatchLossParams<float>&);
template void masked_patch_loss_backward_cpu<double>(const MaskedPatchLossParams<double>&);
template double masked_cosine_forward_cpu<float>(const MaskedCosineParams<float>&);
template double masked_cosine_forward_cpu<double>(const MaskedCosineParams<double>&);
template void masked_cosine_backward_cpu<float>(const MaskedCosineParams<float>&);
template void masked_cosine_backward_cpu<double>(const MaskedCosineParams<double>&);
template double ranking_loss_forward_cpu<float>(const RankingLossParams<float>&);
template double ranking_loss_forward_cpu<double>(const RankingLossParams<double>&);
template void ranking_loss_backward_cpu<float>(const RankingLossParams<float>&);
template void ranking_loss_backward_cpu<double>(const RankingLossParams<double>&);

}  // namespace cloze
