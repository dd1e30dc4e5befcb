// The safetensors format (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes JSON header][data]
// header: {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
// Offsets are relative to the start of the data section. Like the reference implementation, the reader
// validates everything before touching data: header size capped at 100 MB, checked arithmetic, every
// tensor's byte length = numel * dtype size, regions in bounds, non-overlapping, contiguous, and covering
// the data section exactly.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/dtype.h"
#include "util/file.h"

namespace fme {

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
  uint64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in data-offset order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + N
};

constexpr uint64_t kMaxSafetensorsHeader = 100ull * 1000 * 1000;

// Parses and validates the header of a safetensors file of `file_size` bytes whose first bytes are
// `bytes[0..n)` (n >= 8 + N is needed). `what` names the file in errors. Throws FormatError.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t n, uint64_t file_size,
                                           const std::string& what);

// A memory-mapped, validated safetensors file. Tensor data is viewed in place (zero-copy).
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // nullptr if absent.
  const TensorInfo* find(const std::string& name) const;
  // Throws ShapeError naming the tensor and the file if absent.
  const TensorInfo& get(const std::string& name) const;
  // Pointer to the tensor's first byte inside the mapping (alignment is whatever the file gives).
  const uint8_t* data(const TensorInfo& t) const { return file_->data() + header_.data_start + t.begin; }
  // The mapping, for keeping views alive.
  std::shared_ptr<MappedFile> mapping() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  SafetensorsHeader header_;
  std::map<std::string, size_t> index_;
};

// Writes a safetensors file atomically (temp, fsync, rename). Tensors are written in the order added;
// data is copied from the caller's pointers at write() time, so they must stay valid until then.
class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data, size_t nbytes);
  // A tensor whose bytes lie in several buffers, written one after another (e.g. the rows of many samples):
  // no concatenated copy is ever made.
  void add_chunks(const std::string& name, DType dtype, std::vector<int64_t> shape,
                  std::vector<std::pair<const void*, size_t>> chunks);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  // Returns the number of bytes written; with `sha256_hex`, also the file's SHA-256, hashed as it is written.
  uint64_t write(const std::string& path, std::string* sha256_hex = nullptr) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<std::pair<const void*, size_t>> chunks;
    size_t nbytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace fme
