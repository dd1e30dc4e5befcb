// Tests of formats/dtype: the safetensors dtype names and element sizes (from the format's spec).
#include <gtest/gtest.h>

#include "formats/dtype.h"

namespace {

TEST(DType, NamesSizesAndParsingAgree) {
  struct Row {
    const char* name;
    fme::DType t;
    size_t size;
    bool is_float;
  };
  // Sizes per the safetensors spec.
  const Row rows[] = {
      {"BOOL", fme::DType::BOOL, 1, false}, {"U8", fme::DType::U8, 1, false},     {"I8", fme::DType::I8, 1, false},
      {"U16", fme::DType::U16, 2, false},   {"I16", fme::DType::I16, 2, false},   {"F16", fme::DType::F16, 2, true},
      {"BF16", fme::DType::BF16, 2, true},  {"U32", fme::DType::U32, 4, false},   {"I32", fme::DType::I32, 4, false},
      {"F32", fme::DType::F32, 4, true},    {"U64", fme::DType::U64, 8, false},   {"I64", fme::DType::I64, 8, false},
      {"F64", fme::DType::F64, 8, true},    {"F8_E4M3", fme::DType::F8_E4M3, 1, true},
      {"F8_E5M2", fme::DType::F8_E5M2, 1, true},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    auto parsed = fme::parse_dtype(r.name);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, r.t);
    EXPECT_EQ(fme::dtype_name(r.t), r.name);
    EXPECT_EQ(fme::dtype_size(r.t), r.size);
    EXPECT_EQ(fme::dtype_is_float(r.t), r.is_float);
  }
}

TEST(DType, UnknownNamesAreRejected) {
  EXPECT_FALSE(fme::parse_dtype("F31").has_value());
  EXPECT_FALSE(fme::parse_dtype("f32").has_value());  // names are case-sensitive in the format
  EXPECT_FALSE(fme::parse_dtype("").has_value());
}

}  // namespace
