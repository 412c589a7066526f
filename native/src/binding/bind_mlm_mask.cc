// MLM token corruption: mlmMask(ids, select, group | null, vocabSize, maskId,
// maskProb, randomProb, randomLow, randomHigh, seed, step) -> {ids, rows, targets}.
#include <string>
#include <vector>

#include "../ops/mlm_mask.h"
#include "bindings.h"
#ifdef CLOZE_CUDA
#include "../cuda/device_temp.h"
#endif

namespace cloze {

void register_mlm_mask(Napi::Env env, Napi::Object exports) {
  (void)env;
  CLOZE_EXPORT(exports, "mlmMask", [](const ArgReader& a) -> Napi::Value {
    NTensor* ids = a.tensor(0, "ids");
    NTensor* sel = a.tensor(1, "select");
    NTensor* grp = a.tensor_or_null(2, "group");
    a.want_dtype(ids, DType::I32, "ids");
    a.want_ndim(ids, 2, 2, "ids");
    a.want_dtype(sel, DType::U8, "select");
    a.want_shape(sel, ids->shape(), "select");
    if (grp) {
      a.want_dtype(grp, DType::I32, "group");
      a.want_shape(grp, ids->shape(), "group");
    }
    const int64_t B = ids->dim(0), L = ids->dim(1), N = B * L;
    if (N >= (int64_t(1) << 31)) a.bad(ErrCode::Shape, "fewer than 2^31 tokens", "ids", tensor_desc(ids));
    const int64_t V = a.integer(3, "vocabSize", 1, (int64_t(1) << 31) - 1);
    const int64_t mask_id = a.integer(4, "maskId", 0, V - 1);
    const double pm = a.number(5, "maskProb");
    const double pr = a.number(6, "randomProb");
    if (!(pm >= 0 && pm <= 1)) a.bad(ErrCode::Value, "a probability in [0, 1]", "maskProb", a.describe(a.info[5]));
    if (!(pr >= 0 && pr <= 1 - pm))
      a.bad(ErrCode::Value, "a probability in [0, 1 - maskProb]", "randomProb", a.describe(a.info[6]));
    const int64_t lo = a.integer(7, "randomLow", 0, V - 1);
    const int64_t hi = a.integer(8, "randomHigh", lo + 1, V);
    const int64_t seed = a.integer(9, "seed", 0, (int64_t(1) << 53));
    const int64_t step = a.integer(10, "step", 0, (int64_t(1) << 53));

    const int32_t* pid = ids->ptr<int32_t>();
    const uint8_t* ps = sel->ptr<uint8_t>();
    const int32_t* pg = grp ? grp->ptr<int32_t>() : nullptr;

    MlmMaskParams p;
    p.B = B;
    p.L = L;
    p.ids = pid;
    p.select = ps;
    p.group = pg;
    p.mask_id = static_cast<int32_t>(mask_id);
    p.mask_prob = pm;
    p.random_prob = pr;
    p.random_lo = static_cast<int32_t>(lo);
    p.random_hi = static_cast<int32_t>(hi);
    p.seed = static_cast<uint64_t>(seed);
    p.step = static_cast<uint64_t>(step);

    if (a.on_cuda()) {
#ifdef CLOZE_CUDA
      // Validation, counts and offsets run on the device; one small copy back
      // (M and the first failure) sizes the outputs or names the bad entry.
      cuda::DeviceTemp scratch(sizeof(int64_t) * static_cast<size_t>(B + 2), a.op);
      int64_t* offsets = scratch.as<int64_t>();
      const MlmCheck c = mlm_check_count_cuda(B, L, V, pid, ps, pg, offsets);
      if (c.failure != INT64_MAX) {
        const int64_t i = c.failure / 3, k = c.failure % 3;
        int32_t bad = 0;
        if (k == 1) {
          uint8_t s8 = 0;
          cuda::copy(&s8, false, ps + i, true, 1, a.op);
          bad = s8;
        } else {
          cuda::copy(&bad, false, (k == 0 ? pid : pg) + i, true, sizeof bad, a.op);
        }
        const std::string at = std::to_string(bad) + " at position " + std::to_string(i);
        if (k == 0) fail(ErrCode::Index, a.op, expected("ids in [0, " + std::to_string(V) + ")", "ids", at));
        if (k == 1) fail(ErrCode::Value, a.op, expected("values 0 or 1", "select", at));
        fail(ErrCode::Index, a.op,
             expected("in-row positions in [0, " + std::to_string(L) + ") at selected tokens", "group", at));
      }
      const int64_t M = c.selected;
      Napi::Object out = a.alloc(DType::I32, ids->shape(), false);
      Napi::Object rows = a.alloc(DType::I32, {M}, false);
      Napi::Object targets = a.alloc(DType::I32, {M}, false);
      p.row_offset = offsets;
      p.out_ids = NTensor::Unwrap(out)->ptr<int32_t>();
      p.rows = NTensor::Unwrap(rows)->ptr<int32_t>();
      p.targets = NTensor::Unwrap(targets)->ptr<int32_t>();
      mlm_mask_cuda(p);
      Napi::Object res = Napi::Object::New(a.env());
      res.Set("ids", out);
      res.Set("rows", rows);
      res.Set("targets", targets);
      return res;
#else
      no_cuda_kernel(a.op, DType::F32);  // a cuda tensor in the CPU addon
#endif
    }

    for (int64_t i = 0; i < N; i++) {
      if (pid[i] < 0 || pid[i] >= V)
        fail(ErrCode::Index, a.op,
             expected("ids in [0, " + std::to_string(V) + ")", "ids",
                      std::to_string(pid[i]) + " at position " + std::to_string(i)));
      if (ps[i] > 1)
        fail(ErrCode::Value, a.op,
             expected("values 0 or 1", "select", std::to_string(ps[i]) + " at position " + std::to_string(i)));
      if (pg && ps[i] && (pg[i] < 0 || pg[i] >= L))
        fail(ErrCode::Index, a.op,
             expected("in-row positions in [0, " + std::to_string(L) + ") at selected tokens", "group",
                      std::to_string(pg[i]) + " at position " + std::to_string(i)));
    }

    std::vector<int64_t> offset(static_cast<size_t>(B) + 1, 0);
    mlm_count_selected_cpu(B, L, ps, offset.data() + 1);
    for (int64_t b = 0; b < B; b++) offset[b + 1] += offset[b];
    const int64_t M = offset[B];

    Napi::Object out = NTensor::New(a.env(), DType::I32, ids->shape(), a.op, false);
    Napi::Object rows = NTensor::New(a.env(), DType::I32, {M}, a.op, false);
    Napi::Object targets = NTensor::New(a.env(), DType::I32, {M}, a.op, false);
    p.row_offset = offset.data();
    p.out_ids = NTensor::Unwrap(out)->ptr<int32_t>();
    p.rows = NTensor::Unwrap(rows)->ptr<int32_t>();
    p.targets = NTensor::Unwrap(targets)->ptr<int32_t>();
    mlm_mask_cpu(p);

    Napi::Object res = Napi::Object::New(a.env());
    res.Set("ids", out);
    res.Set("rows", rows);
    res.Set("targets", targets);
    return res;
  });
}

}  // namespace cloze
