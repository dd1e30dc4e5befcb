// Bad safetensors input: each case must be a FormatError whose message names the file and the tensor
// or field at fault. Files are built byte by byte, so each test states exactly what is wrong.
#include <gtest/gtest.h>

#include "formats/safetensors.h"
#include "test_helpers.h"

namespace {

using fme_test::contains;
using fme_test::st_bytes;
using fme_test::TempDir;

// Writes `bytes` to DIR/bad.safetensors, opens it, and returns the FormatError message.
struct BadFile {
  TempDir dir;
  std::string path = dir / "bad.safetensors";
  std::string open(const std::string& bytes) {
    fme_test::write_bytes(path, bytes);
    return fme_test::error_of<fme::FormatError>([&] { fme::SafetensorsFile::open(path); });
  }
};

#define EXPECT_MSG(m, part) EXPECT_TRUE(contains(m, part)) << "message: " << m << "\nexpected part: " << part

TEST(SafetensorsErrors, FileShorterThan8Bytes) {
  BadFile b;
  std::string m = b.open(std::string("\x05\0\0\0\0", 5));
  EXPECT_MSG(m, b.path + ": truncated: file has 5 bytes, the 8-byte header length needs 8");
  m = b.open("");
  EXPECT_MSG(m, b.path + ": truncated: file has 0 bytes");
}

TEST(SafetensorsErrors, HeaderLengthPastEndOfFile) {
  BadFile b;
  std::string m = b.open(st_bytes("{}", 0, 1000));
  EXPECT_MSG(m, b.path + ": truncated: file has 10 bytes, the 1000-byte header needs 1008");
}

TEST(SafetensorsErrors, DataShorterThanOffsets) {
  BadFile b;
  // A valid file (6 floats) cut 8 bytes short.
  std::string m = b.open(st_bytes(R"({"a.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})", 16));
  EXPECT_MSG(m, b.path + ": tensor 'a.weight': data_offsets [0, 24] end past the data section (16 bytes)");
}

TEST(SafetensorsErrors, HeaderOffsetsPastTheEnd) {
  BadFile b;
  // Consistent lengths, but the second tensor is placed beyond the 392-byte data section.
  std::string m = b.open(st_bytes(R"({"a":{"dtype":"U8","shape":[392],"data_offsets":[0,392]},)"
                                  R"("b.weight":{"dtype":"F32","shape":[2],"data_offsets":[1000,1008]}})",
                                  392));
  EXPECT_MSG(m, b.path + ": tensor 'b.weight': data_offsets [1000, 1008] end past the data section (392 bytes)");
  // Offsets near 2^64 must not wrap around in the checks.
  m = b.open(st_bytes(R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[18446744073709551615,7]}})", 8));
  EXPECT_MSG(m, b.path + ": tensor 'w': data_offsets [18446744073709551615, 7] begin after end");
  m = b.open(st_bytes(R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[18446744073709551608,18446744073709551615]}})", 8));
  EXPECT_MSG(m, b.path + ": tensor 'w': dtype U8 shape [8] needs 8 bytes but data_offsets");
  m = b.open(st_bytes(R"({"w":{"dtype":"U8","shape":[7],"data_offsets":[18446744073709551608,18446744073709551615]}})", 8));
  EXPECT_MSG(m, b.path + ": tensor 'w': data_offsets [18446744073709551608, 18446744073709551615] end past");
}

TEST(SafetensorsErrors, OverlappingOffsets) {
  BadFile b;
  std::string m = b.open(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                  12));
  EXPECT_MSG(m, b.path + ": tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]");
  // Two names for the same bytes are an overlap too.
  m = b.open(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("alias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                      8));
  EXPECT_MSG(m, b.path + ": tensor 'alias': data_offsets [0, 8] overlap tensor 'a' [0, 8]");
}

TEST(SafetensorsErrors, GapBetweenTensors) {
  BadFile b;
  std::string m = b.open(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                                  20));
  EXPECT_MSG(m, b.path + ": tensor 'b': data_offsets [12, 20] leave a gap of 4 bytes after tensor 'a' [0, 8]");
  m = b.open(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12));
  EXPECT_MSG(m, b.path + ": tensor 'a': data_offsets [4, 12] leave a gap: the first 4 bytes");
}

TEST(SafetensorsErrors, DataSectionNotCoveredExactly) {
  BadFile b;
  std::string m = b.open(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 12));
  EXPECT_MSG(m, b.path + ": the data section has 12 bytes but the tensors cover 8 (last tensor 'a' ends at 8)");
  m = b.open(st_bytes(R"({"__metadata__":{"k":"v"}})", 4));
  EXPECT_MSG(m, b.path + ": the header lists no tensors but the data section has 4 bytes");
}

TEST(SafetensorsErrors, UnknownDType) {
  BadFile b;
  std::string m = b.open(st_bytes(R"({"w":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}})", 4));
  EXPECT_MSG(m, b.path + ": tensor 'w': unknown dtype 'F31'");
  m = b.open(st_bytes(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4));
  EXPECT_MSG(m, b.path + ": tensor 'w': 'dtype' must be a string, got 4");
}

TEST(SafetensorsErrors, HeaderNotJson) {
  BadFile b;
  std::string m = b.open(st_bytes(R"({"w": {"dtype": "F32",)", 0));
  EXPECT_MSG(m, b.path + ": header is not valid JSON: ");
  m = b.open(st_bytes(std::string("{\0}", 3), 0));
  EXPECT_MSG(m, b.path + ": header is not valid JSON: ");
  m = b.open(st_bytes(R"({"w":{"dtype":"U8","shape":[1e999],"data_offsets":[0,1]}})", 1));
  EXPECT_MSG(m, b.path + ": header is not valid JSON: ");
}

TEST(SafetensorsErrors, HeaderNotAnObject) {
  BadFile b;
  std::string m = b.open(st_bytes("[1, 2]  ", 0));
  EXPECT_MSG(m, b.path + ": header must be a JSON object, got an array");
  m = b.open(st_bytes(R"({"w": [1, 2]})", 0));
  EXPECT_MSG(m, b.path + ": tensor 'w': entry must be an object with dtype, shape and data_offsets, got an array");
}

TEST(SafetensorsErrors, HeaderOver100MBClaimed) {
  BadFile b;
  std::string m = b.open(st_bytes("{}", 0, 100000001));
  EXPECT_MSG(m, b.path + ": header length 100000001 exceeds the limit of 100000000 bytes");
  m = b.open(st_bytes("{}", 0, INT64_MAX));
  EXPECT_MSG(m, b.path + ": header length 9223372036854775807 exceeds the limit");
}

TEST(SafetensorsErrors, ShapeLengthMismatch) {
  BadFile b;
  std::string m = b.open(st_bytes(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20));
  EXPECT_MSG(m, b.path + ": tensor 'w': dtype F32 shape [2, 3] needs 24 bytes but data_offsets [0, 20] hold 20");
}

TEST(SafetensorsErrors, ShapeProductOverflow) {
  BadFile b;
  std::string m = b.open(
      st_bytes(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0));
  EXPECT_MSG(m, b.path + ": tensor 'w': shape [4294967296, 4294967296] of F32 overflows 64-bit byte counts");
  // numel fits, times the element size does not
  m = b.open(st_bytes(R"({"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})", 0));
  EXPECT_MSG(m, b.path + ": tensor 'w': shape [2305843009213693952] of F64 overflows");
}

TEST(SafetensorsErrors, NegativeShape) {
  BadFile b;
  std::string m = b.open(st_bytes(R"({"w":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]}})", 8));
  EXPECT_MSG(m, b.path + ": tensor 'w': shape [-1, 2] has a negative dimension");
  m = b.open(st_bytes(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8));
  EXPECT_MSG(m, b.path + ": tensor 'w': shape [2.0] must hold non-negative integers");
}

TEST(SafetensorsErrors, BadDataOffsets) {
  BadFile b;
  std::string m = b.open(st_bytes(R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0]}})", 2));
  EXPECT_MSG(m, b.path + ": tensor 'w': 'data_offsets' must be two non-negative integers [begin, end], got [0]");
  m = b.open(st_bytes(R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[-2,0]}})", 2));
  EXPECT_MSG(m, b.path + ": tensor 'w': 'data_offsets' must be two non-negative integers");
  m = b.open(st_bytes(R"({"w":{"dtype":"U8","shape":[2]}})", 2));
  EXPECT_MSG(m, b.path + ": tensor 'w': missing 'data_offsets'");
}

TEST(SafetensorsErrors, MetadataNotStrings) {
  BadFile b;
  std::string m = b.open(st_bytes(R"({"__metadata__":{"format":"pt","epoch":3}})", 0));
  EXPECT_MSG(m, b.path + ": __metadata__ key 'epoch' must be a string, got 3");
  m = b.open(st_bytes(R"({"__metadata__":["a"]})", 0));
  EXPECT_MSG(m, b.path + ": __metadata__ must be an object mapping strings to strings, got an array");
}

TEST(SafetensorsErrors, DuplicateTensorName) {
  BadFile b;
  std::string m = b.open(st_bytes(R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                                  R"("w":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                                  4));
  EXPECT_MSG(m, b.path + ": header has duplicate key 'w' in the top-level object");
}

TEST(SafetensorsErrors, PaddedHeaderAndEmptyFileAreFine) {
  TempDir d;
  // Trailing spaces are the writers' 8-byte padding.
  fme_test::write_bytes(d / "ok.safetensors",
                        st_bytes(R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})" + std::string(5, ' '), 2));
  auto f = fme::SafetensorsFile::open(d / "ok.safetensors");
  EXPECT_EQ(f->get("w").nbytes(), 2u);
  fme_test::write_bytes(d / "empty.safetensors", st_bytes("{}", 0));
  EXPECT_TRUE(fme::SafetensorsFile::open(d / "empty.safetensors")->tensors().empty());
}

}  // namespace
