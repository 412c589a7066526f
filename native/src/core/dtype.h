// Element types a native tensor can hold. float64 exists so that gradient
// checks can run the production kernels in double precision.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace cloze {

enum class DType : int { F32 = 0, F64 = 1, I32 = 2, U8 = 3 };

inline size_t dtype_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    default: return 1;
  }
}

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
    default: return "uint8";
  }
}

inline bool dtype_from_name(const std::string& s, DType* out) {
  if (s == "float32") *out = DType::F32;
  else if (s == "float64") *out = DType::F64;
  else if (s == "int32") *out = DType::I32;
  else if (s == "uint8") *out = DType::U8;
  else return false;
  return true;
}

inline bool is_float(DType d) { return d == DType::F32 || d == DType::F64; }

}  // namespace cloze
