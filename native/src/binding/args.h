// Argument reading and checking for op bindings. Every check throws OpError
// with the wording "Expected … for <name> but received …".
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "../core/error.h"
#include "tensor_object.h"

namespace cloze {

struct ArgReader {
  const Napi::CallbackInfo& info;
  const char* op;

  Napi::Env env() const { return info.Env(); }
  [[noreturn]] void bad(ErrCode c, const std::string& what, const std::string& name, const std::string& got) const {
    fail(c, op, expected(what, name, got));
  }
  std::string describe(const Napi::Value& v) const;

  NTensor* tensor(size_t i, const char* name) const;           // required
  NTensor* tensor_or_null(size_t i, const char* name) const;   // null/undefined → nullptr
  NTensor* tensor_field(const Napi::Object& o, const char* key) const;  // optional object field
  bool boolean(size_t i, const char* name) const;
  double number(size_t i, const char* name) const;
  int64_t integer(size_t i, const char* name, int64_t lo, int64_t hi) const;
  std::vector<int64_t> shape(size_t i, const char* name) const;
  Napi::Object options(size_t i) const;  // missing → empty object
  double opt_number(const Napi::Object& o, const char* key, double dflt) const;
  bool opt_bool(const Napi::Object& o, const char* key, bool dflt) const;
  std::vector<NTensor*> tensor_list(size_t i, const char* name) const;

  // Checks on tensors already read.
  void want_float(const NTensor* t, const char* name) const;
  void want_dtype(const NTensor* t, DType dt, const char* name) const;
  void want_same_dtype(const NTensor* a, const NTensor* b, const char* name) const;
  void want_ndim(const NTensor* t, int64_t lo, int64_t hi, const char* name) const;
  void want_shape(const NTensor* t, const std::vector<int64_t>& s, const char* name) const;
  void want_numel(const NTensor* t, int64_t n, const char* name) const;
};

std::string tensor_desc(const NTensor* t);  // "float32 tensor [2, 3]"
std::string with_article(const std::string& noun);  // "an int32 tensor"

// A 0-d float tensor holding v.
Napi::Object scalar_tensor(const ArgReader& a, DType dt, double v);
// { loss: 0-d mean over `count` rows (0 when none), lse, count }: what the cross-entropy forwards return.
Napi::Object loss_result(const ArgReader& a, DType dt, double total, int64_t count, const Napi::Object& lse);

// Runs a binding body, turning C++ exceptions into JS errors with code and op.
Napi::Value guarded(const Napi::CallbackInfo& info, const char* op,
                    const std::function<Napi::Value(const ArgReader&)>& body);

// Calls f(T{}) for the float dtype of t.
template <typename F>
auto dispatch_float(DType dt, const char* op, F&& f) {
  if (dt == DType::F32) return f(float{});
  if (dt == DType::F64) return f(double{});
  fail(ErrCode::Dtype, op, "no float kernel for dtype " + std::string(dtype_name(dt)));
}

}  // namespace cloze

#define CLOZE_EXPORT(exports, name, ...)                                                                     \
  exports.Set(name, Napi::Function::New(                                                                       \
                        exports.Env(),                                                                         \
                        [](const Napi::CallbackInfo& info) -> Napi::Value { return ::cloze::guarded(info, name, __VA_ARGS__); }, \
                        name))
