// Element types of the safetensors format: sizes and names, one table so they cannot disagree.
#include "formats/dtype.h"

#include <array>

namespace fme {
namespace {

struct DTypeRow {
  DType type;
  std::string_view name;
  size_t size;
  bool is_float;
};

// Order matches the enum, so the enum value indexes the table.
constexpr std::array<DTypeRow, 15> kTable = {{
    {DType::BOOL, "BOOL", 1, false},
    {DType::U8, "U8", 1, false},
    {DType::I8, "I8", 1, false},
    {DType::U16, "U16", 2, false},
    {DType::I16, "I16", 2, false},
    {DType::F16, "F16", 2, true},
    {DType::BF16, "BF16", 2, true},
    {DType::U32, "U32", 4, false},
    {DType::I32, "I32", 4, false},
    {DType::F32, "F32", 4, true},
    {DType::U64, "U64", 8, false},
    {DType::I64, "I64", 8, false},
    {DType::F64, "F64", 8, true},
    {DType::F8_E4M3, "F8_E4M3", 1, true},
    {DType::F8_E5M2, "F8_E5M2", 1, true},
}};

const DTypeRow& row(DType t) { return kTable.at(static_cast<size_t>(t)); }

}  // namespace

size_t dtype_size(DType t) { return row(t).size; }
std::string_view dtype_name(DType t) { return row(t).name; }
bool dtype_is_float(DType t) { return row(t).is_float; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& r : kTable)
    if (r.name == name) return r.type;
  return std::nullopt;
}

}  // namespace fme
