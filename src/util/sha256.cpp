// SHA-256 via OpenSSL's EVP interface (the low-level SHA256_* calls are deprecated in OpenSSL 3).
#include "util/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "util/error.h"

namespace fme {
namespace {

EVP_MD_CTX* as_ctx(void* p) { return static_cast<EVP_MD_CTX*>(p); }

std::string to_hex(const unsigned char* p, unsigned n) {
  static const char digits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (unsigned i = 0; i < n; ++i) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 0xF];
  }
  return out;
}

}  // namespace

Sha256::Sha256() {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) throw Error("sha256: EVP_MD_CTX_new failed");
  if (EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx);
    throw Error("sha256: EVP_DigestInit_ex failed");
  }
  ctx_ = ctx;
}

Sha256::~Sha256() { EVP_MD_CTX_free(as_ctx(ctx_)); }

Sha256::Sha256(Sha256&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)), digest_(std::move(other.digest_)) {}

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(as_ctx(ctx_));
    ctx_ = std::exchange(other.ctx_, nullptr);
    digest_ = std::move(other.digest_);
  }
  return *this;
}

void Sha256::update(const void* data, size_t n) {
  // Silently hashing after finalisation would give a digest of the wrong bytes; fail loudly instead.
  if (!digest_.empty() || ctx_ == nullptr) throw Error("sha256: update() after hex_digest()");
  if (n == 0) return;
  if (EVP_DigestUpdate(as_ctx(ctx_), data, n) != 1) throw Error("sha256: EVP_DigestUpdate failed");
}

std::string Sha256::hex_digest() {
  if (!digest_.empty()) return digest_;
  if (ctx_ == nullptr) throw Error("sha256: hex_digest() on a moved-from hasher");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (EVP_DigestFinal_ex(as_ctx(ctx_), md, &len) != 1) throw Error("sha256: EVP_DigestFinal_ex failed");
  digest_ = to_hex(md, len);
  return digest_;
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hex_digest();
}

std::string sha256_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(path + ": cannot open for sha256: " + std::strerror(errno));
  // Closes the fd on every path out, including a throw from the hasher.
  std::unique_ptr<int, void (*)(int*)> guard(&fd, [](int* f) { ::close(*f); });
  constexpr size_t kChunk = size_t{1} << 20;
  std::vector<unsigned char> buf(kChunk);
  Sha256 h;
  for (;;) {
    ssize_t r = ::read(fd, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw IoError(path + ": read failed during sha256: " + std::strerror(errno));
    if (r == 0) break;
    h.update(buf.data(), static_cast<size_t>(r));
  }
  return h.hex_digest();
}

}  // namespace fme
