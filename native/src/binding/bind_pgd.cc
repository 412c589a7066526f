// L2 PGD bindings: the random start and the projected ascent step.
#include "../ops/pgd.h"
#include "bindings.h"
#include "host_view.h"

namespace cloze {

namespace {

// starts / lengths: int32 [B] on the op's device, each example's rows inside
// [0, R) and after the previous example's (so no row is written twice).
// Validated on the host: the copy of a cuda tensor is B·8 bytes.
void check_segments(const ArgReader& a, NTensor* starts, NTensor* lengths, int64_t R) {
  a.want_dtype(starts, DType::I32, "starts");
  a.want_ndim(starts, 1, 1, "starts");
  a.want_dtype(lengths, DType::I32, "lengths");
  a.want_shape(lengths, starts->shape(), "lengths");
  HostView<int32_t> s(starts, a.op);
  HostView<int32_t> l(lengths, a.op);
  int64_t end = 0;
  for (int64_t b = 0; b < starts->numel(); b++) {
    if (l[b] < 0) a.bad(ErrCode::Value, "non-negative row counts", "lengths", "lengths[" + std::to_string(b) + "] = " + std::to_string(l[b]));
    if (s[b] < end || int64_t(s[b]) + l[b] > R) {
      a.bad(ErrCode::Index, "examples in order, not overlapping, within the " + std::to_string(R) + " rows", "starts",
            "example " + std::to_string(b) + " at rows [" + std::to_string(s[b]) + ", " + std::to_string(int64_t(s[b]) + l[b]) + ")");
    }
    end = int64_t(s[b]) + l[b];
  }
}

double radius(const ArgReader& a, size_t i) {
  const double eps = a.number(i, "eps");
  if (!(eps > 0 && std::isfinite(eps))) a.bad(ErrCode::Value, "a finite radius > 0", "eps", a.describe(a.info[i]));
  return eps;
}

}  // namespace

void register_pgd(Napi::Env env, Napi::Object exports) {
  (void)env;
  // pgdRandomStart(like [R, D], starts int32 [B], lengths int32 [B], eps, seed, step[, rowOffset]) -> δ [R, D];
  // rowOffset: rows of a global batch before these (data parallel), so the draws are that batch's rows'
  CLOZE_EXPORT(exports, "pgdRandomStart", [](const ArgReader& a) -> Napi::Value {
    NTensor* like = a.tensor(0, "like");
    NTensor* starts = a.tensor(1, "starts");
    NTensor* lengths = a.tensor(2, "lengths");
    a.want_float(like, "like");
    a.want_ndim(like, 2, 2, "like");
    check_segments(a, starts, lengths, like->dim(0));
    const double eps = radius(a, 3);
    const int64_t seed = a.integer(4, "seed", 0, (int64_t(1) << 53));
    const int64_t step = a.integer(5, "step", 0, (int64_t(1) << 53));
    const int64_t row_offset = a.info.Length() > 6 && !a.info[6].IsUndefined() ? a.integer(6, "rowOffset", 0, (int64_t(1) << 40)) : 0;
    // The draws' flat index (rowOffset + R)·D must stay below 2^53 (the counter is exact there).
    if (static_cast<double>(row_offset + like->dim(0)) * static_cast<double>(like->dim(1)) >= 9.0e15)
      a.bad(ErrCode::Value, "(rowOffset + rows) x columns below 2^53", "rowOffset", std::to_string(row_offset));
    Napi::Object out = a.alloc(like->dtype(), like->shape(), true);
    dispatch(a, like, [&](auto t, auto dev) {
      using T = decltype(t);
      PgdParams<T> p;
      p.rows = like->dim(0);
      p.cols = like->dim(1);
      p.examples = starts->numel();
      p.starts = starts->ptr<int32_t>();
      p.lengths = lengths->ptr<int32_t>();
      p.out = NTensor::Unwrap(out)->ptr<T>();
      p.eps = eps;
      p.seed = static_cast<uint64_t>(seed);
      p.step = static_cast<uint64_t>(step);
      p.row_offset = row_offset;
      CLOZE_KERNEL(dev, pgd_random_start, p);
      return 0;
    });
    return out;
  });

  // pgdStep(delta [R, D], grad [R, D], starts int32 [B], lengths int32 [B], alpha, eps) -> δ' [R, D]
  CLOZE_EXPORT(exports, "pgdStep", [](const ArgReader& a) -> Napi::Value {
    NTensor* delta = a.tensor(0, "delta");
    NTensor* grad = a.tensor(1, "grad");
    NTensor* starts = a.tensor(2, "starts");
    NTensor* lengths = a.tensor(3, "lengths");
    a.want_float(delta, "delta");
    a.want_ndim(delta, 2, 2, "delta");
    a.want_same_dtype(delta, grad, "grad");
    a.want_shape(grad, delta->shape(), "grad");
    check_segments(a, starts, lengths, delta->dim(0));
    const double alpha = a.number(4, "alpha");
    if (!(alpha >= 0 && std::isfinite(alpha))) a.bad(ErrCode::Value, "a finite step size >= 0", "alpha", a.describe(a.info[4]));
    const double eps = radius(a, 5);
    Napi::Object out = a.alloc(delta->dtype(), delta->shape(), true);
    dispatch(a, delta, [&](auto t, auto dev) {
      using T = decltype(t);
      PgdParams<T> p;
      p.rows = delta->dim(0);
      p.cols = delta->dim(1);
      p.examples = starts->numel();
      p.starts = starts->ptr<int32_t>();
      p.lengths = lengths->ptr<int32_t>();
      p.delta = delta->ptr<T>();
      p.grad = grad->ptr<T>();
      p.out = NTensor::Unwrap(out)->ptr<T>();
      p.alpha = alpha;
      p.eps = eps;
      CLOZE_KERNEL(dev, pgd_step, p);
      return 0;
    });
    return out;
  });
}

}  // namespace cloze
