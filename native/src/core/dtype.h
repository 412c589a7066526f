// Element types a native tensor can hold. float64 exists so that gradient
// checks can run the production kernels in double precision; bfloat16 is the
// CUDA backend's compute type (the CPU holds it only to cast and transfer).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace cloze {

enum class DType : int { F32 = 0, F64 = 1, I32 = 2, U8 = 3, BF16 = 4 };

// bfloat16 as stored: the top 16 bits of an IEEE float32. A plain struct so
// host code and parameter structs can name it without CUDA's headers; CUDA
// kernels reinterpret it as __nv_bfloat16 (same size and layout).
struct bf16 {
  uint16_t bits;
};

// Round to nearest even, as CUDA's __float2bfloat16 does; NaN stays NaN.
inline bf16 bf16_from_float(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16_t>(u >> 16)};
}
inline float float_from_bf16(bf16 h) {
  const uint32_t u = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Saved statistics (LayerNorm mean/rstd, cross-entropy lse) are float32 when
// the compute type is bfloat16: bf16's 8-bit mantissa would put a ~0.4% error
// on rstd and on every softmax the backward rebuilds from lse.
template <typename T> struct StatType { using type = T; };
template <> struct StatType<bf16> { using type = float; };
template <typename T> using stat_t = typename StatType<T>::type;

inline size_t dtype_size(DType d) {
  switch (d) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::BF16: return 2;
    default: return 1;
  }
}

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
    case DType::BF16: return "bfloat16";
    default: return "uint8";
  }
}

inline bool dtype_from_name(const std::string& s, DType* out) {
  if (s == "float32") *out = DType::F32;
  else if (s == "float64") *out = DType::F64;
  else if (s == "int32") *out = DType::I32;
  else if (s == "uint8") *out = DType::U8;
  else if (s == "bfloat16") *out = DType::BF16;
  else return false;
  return true;
}

inline bool is_float(DType d) { return d == DType::F32 || d == DType::F64 || d == DType::BF16; }

// Where a tensor's bytes live. Transfers between devices are explicit.
enum class Device : int { CPU = 0, CUDA = 1 };
inline const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

}  // namespace cloze
