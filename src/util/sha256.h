// SHA-256 digests (OpenSSL EVP) for shard checksums in manifests and for verifying downloaded files.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace fme {

// Incremental SHA-256. Feed bytes with update(), then hex_digest() finalises once and returns lowercase hex;
// further calls to hex_digest() return the same digest, and update() after it throws.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;

  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hex_digest();

 private:
  void* ctx_ = nullptr;  // EVP_MD_CTX*, kept opaque so callers need no OpenSSL headers
  std::string digest_;   // set once finalised
};

// Digest of a buffer, lowercase hex.
std::string sha256_hex(std::string_view data);

// Digest of a file, read in 1 MiB chunks so shards of any size use constant memory.
// Throws IoError naming the path if it cannot be opened or read.
std::string sha256_file(const std::string& path);

}  // namespace fme
