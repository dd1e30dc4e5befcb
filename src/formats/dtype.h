// Element types as named by the safetensors format ("F32", "BF16", ...).
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace fme {

enum class DType { BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64, F8_E4M3, F8_E5M2 };

// Bytes per element.
size_t dtype_size(DType t);
// The safetensors name: "F32", "BF16", ...
std::string_view dtype_name(DType t);
// Parses a safetensors dtype name; nullopt if unknown.
std::optional<DType> parse_dtype(std::string_view name);
bool dtype_is_float(DType t);

}  // namespace fme
