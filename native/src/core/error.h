// Errors that cross the JS boundary. Kernels and bindings throw OpError; the
// binding guard turns it into a JS exception carrying `code` and `op`, so
// native code never aborts the user's process.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <cstdint>

namespace cloze {

enum class ErrCode { Shape, Dtype, Index, Value, OOM, IO, Device, Cuda, Internal };

inline const char* err_code_name(ErrCode c) {
  switch (c) {
    case ErrCode::Shape: return "E_SHAPE";
    case ErrCode::Dtype: return "E_DTYPE";
    case ErrCode::Index: return "E_INDEX";
    case ErrCode::Value: return "E_VALUE";
    case ErrCode::OOM: return "E_OOM";
    case ErrCode::IO: return "E_IO";
    case ErrCode::Device: return "E_DEVICE";
    case ErrCode::Cuda: return "E_CUDA";
    default: return "E_INTERNAL";
  }
}

class OpError : public std::runtime_error {
 public:
  OpError(ErrCode code, std::string op, const std::string& msg)
      : std::runtime_error(op + ": " + msg), code(code), op(std::move(op)) {}
  ErrCode code;
  std::string op;
};

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); i++) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

// Builds "Expected <what> for <name> but received <got>" in one wording everywhere.
inline std::string expected(const std::string& what, const std::string& name, const std::string& got) {
  return "Expected " + what + " for " + name + " but received " + got;
}

[[noreturn]] inline void fail(ErrCode c, const std::string& op, const std::string& msg) { throw OpError(c, op, msg); }

}  // namespace cloze
