// Tests of util/sha256: FIPS 180-2 vectors, incremental updates, and streamed file digests checked against
// the sha256sum tool so the 1 MiB chunking cannot hide an off-by-one at chunk edges.
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "util/error.h"
#include "util/sha256.h"

namespace {

namespace fs = std::filesystem;

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "fme_sha256_XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Runs `sha256sum path` and returns the digest column.
std::string sha256sum_tool(const std::string& path) {
  std::string cmd = "sha256sum '" + path + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return "popen failed";
  char buf[256] = {};
  std::string out;
  while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
  int rc = ::pclose(p);
  if (rc != 0) return "sha256sum failed: " + out;
  return out.substr(0, out.find(' '));
}

TEST(Sha256, Fips180Abc) {
  EXPECT_EQ(fme::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, Fips180Empty) {
  EXPECT_EQ(fme::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, Fips180TwoBlockMessage) {
  EXPECT_EQ(fme::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, MillionAIncremental) {
  // FIPS 180-2 long vector, fed in uneven pieces to exercise buffering across block boundaries.
  fme::Sha256 h;
  std::string piece(997, 'a');
  size_t left = 1000000;
  while (left > 0) {
    size_t n = std::min(left, piece.size());
    h.update(piece.data(), n);
    left -= n;
  }
  EXPECT_EQ(h.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, HexDigestIsStableAndUpdateAfterwardsThrows) {
  fme::Sha256 h;
  h.update(std::string_view("ab"));
  h.update(std::string_view("c"));
  std::string d = h.hex_digest();
  EXPECT_EQ(d, fme::sha256_hex("abc"));
  EXPECT_EQ(h.hex_digest(), d);
  EXPECT_THROW(h.update(std::string_view("x")), fme::Error);
}

TEST(Sha256, FileStreamedAcrossChunksMatchesSha256sum) {
  TempDir d;
  // 3 MiB + 12345 bytes: several full 1 MiB chunks and a ragged tail, with non-repeating content.
  std::string content(3 * (1 << 20) + 12345, '\0');
  uint32_t x = 2463534242u;
  for (char& c : content) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x & 0xFF);
  }
  std::string path = d / "data.bin";
  std::ofstream(path, std::ios::binary).write(content.data(), static_cast<std::streamsize>(content.size()));
  std::string got = fme::sha256_file(path);
  EXPECT_EQ(got, sha256sum_tool(path));
  EXPECT_EQ(got, fme::sha256_hex(content));
}

TEST(Sha256, EmptyFile) {
  TempDir d;
  std::ofstream(d / "empty").close();
  EXPECT_EQ(fme::sha256_file(d / "empty"), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, MissingFileNamesThePath) {
  TempDir d;
  std::string path = d / "no-such-shard.safetensors";
  try {
    fme::sha256_file(path);
    FAIL() << "expected IoError";
  } catch (const fme::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(Sha256, DirectoryIsAnIoError) {
  TempDir d;
  EXPECT_THROW(fme::sha256_file(d.path), fme::IoError);
}

}  // namespace
