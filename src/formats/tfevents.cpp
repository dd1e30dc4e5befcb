#include "formats/tfevents.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "util/error.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

// Protobuf wire format (https://protobuf.dev/programming-guides/encoding/): a key is field << 3 | wire type.
enum Wire : uint8_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void key(std::string& out, uint32_t field, Wire w) { varint(out, (uint64_t{field} << 3) | w); }
template <typename T>
void fixed(std::string& out, T v) {  // little-endian, as every supported target stores it
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void bytes_field(std::string& out, uint32_t field, std::string_view s) {
  key(out, field, kBytes);
  varint(out, s.size());
  out.append(s);
}

// tensorflow.Event: wall_time = 1 (double), step = 2 (int64), file_version = 3, summary = 5, session_log = 6.
std::string event(int64_t step, uint32_t what_field, std::string_view what) {
  const double wall = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::string e;
  key(e, 1, kFixed64);
  fixed(e, wall);
  key(e, 2, kVarint);
  varint(e, static_cast<uint64_t>(step));
  bytes_field(e, what_field, what);
  return e;
}

uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

std::array<uint32_t, 256> crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    t[i] = c;
  }
  return t;
}

}  // namespace

uint32_t crc32c(std::string_view data) {
  static const std::array<uint32_t, 256> table = crc_table();
  uint32_t c = 0xffffffffu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

TfEventsWriter::TfEventsWriter(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir + ": cannot create directory: " + ec.message());
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  // The pid keeps two writers started in the same second (a quick resume) apart.
  path_ = (fs::path(dir) / ("events.out.tfevents." + std::to_string(secs) + "." + host + "." + std::to_string(getpid()))).string();
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) throw IoError(path_ + ": cannot create: " + std::strerror(errno));
  write_record(event(0, 3, "brain.Event:2"));
  flush();
}

TfEventsWriter::~TfEventsWriter() {
  if (file_) std::fclose(file_);
}

void TfEventsWriter::write_record(const std::string& e) {
  std::string r;
  fixed(r, static_cast<uint64_t>(e.size()));
  fixed(r, masked(crc32c(std::string_view(r.data(), 8))));
  r += e;
  fixed(r, masked(crc32c(e)));
  if (std::fwrite(r.data(), 1, r.size(), file_) != r.size()) throw IoError(path_ + ": write failed: " + std::strerror(errno));
}

void TfEventsWriter::add_scalar(const std::string& tag, int64_t step, double value) {
  std::string v;  // Summary.Value: tag = 1, simple_value = 2 (float)
  bytes_field(v, 1, tag);
  key(v, 2, kFixed32);
  fixed(v, static_cast<float>(value));
  std::string summary;  // Summary: repeated Value value = 1
  bytes_field(summary, 1, v);
  write_record(event(step, 5, summary));
}

void TfEventsWriter::add_restart(int64_t step) {
  std::string log;  // SessionLog: status = 1 (START = 1)
  key(log, 1, kVarint);
  varint(log, 1);
  write_record(event(step, 6, log));
}

void TfEventsWriter::flush() {
  if (std::fflush(file_) != 0) throw IoError(path_ + ": write failed: " + std::strerror(errno));
}

}  // namespace fme
