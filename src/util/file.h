// Files: read whole, map read-only, and write atomically (temp file, fsync, rename, fsync of the directory),
// so a file that matters appears complete or not at all, even if the process is killed mid-write.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace fme {

// Reads a whole file; throws IoError naming the path.
std::string read_file(const std::string& path);

// A read-only memory map of a whole file. Shared ownership so tensors can view it zero-copy.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Writes `path` atomically: bytes go to `path.tmp.<pid>.<n>`, which is fsynced and renamed over `path`,
// then the directory is fsynced. Destroying an uncommitted AtomicFile removes the temp file.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  uint64_t bytes_written() const { return written_; }
  void commit();  // fsync + rename + fsync(dir)

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// Convenience: atomically replace `path` with `content`.
void write_file_atomic(const std::string& path, std::string_view content);

// Appends `text` to `path` (created if absent) and fsyncs it: IoError naming the file on failure (disk full).
void append_file_durably(const std::string& path, std::string_view text);

}  // namespace fme
