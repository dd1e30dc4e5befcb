// TensorBoard event files (events.out.tfevents.<time>.<host>): TFRecord framing (length, masked CRC-32C of
// the length, an Event proto, masked CRC-32C of it) around tensorflow.Event messages with scalar summaries,
// the files `tensorboard --logdir` lists.
//
// The Event encoder is hand-written: scalars need 4 messages and 8 fields of TensorFlow's event.proto and
// summary.proto, far less than Debian's libprotobuf plus a protoc build step and copied .proto files would
// bring. So is CRC-32C (Castagnoli): Debian has no C/C++ library for it (zlib's crc32 is the other
// polynomial). tests/pipelines/tfevents_reader.py reads the files back with Debian's python3-protobuf and
// python3-crcmod.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace fme {

// CRC-32C of `data` (the Castagnoli polynomial, reflected, as TFRecord and iSCSI use it).
uint32_t crc32c(std::string_view data);

class TfEventsWriter {
 public:
  // Creates `dir` and a new events file in it; its first event names the format version ("brain.Event:2").
  // Throws IoError naming the path.
  explicit TfEventsWriter(const std::string& dir);
  ~TfEventsWriter();
  TfEventsWriter(const TfEventsWriter&) = delete;
  TfEventsWriter& operator=(const TfEventsWriter&) = delete;

  // One scalar (tag, value) at `step`.
  void add_scalar(const std::string& tag, int64_t step, double value);
  // A SessionLog START at `step`: TensorBoard drops what it has read for steps >= step from earlier files,
  // so a run resumed from a checkpoint shows each step once.
  void add_restart(int64_t step);
  // Hands what was written to the OS (the file is read while it grows); throws IoError when a write failed.
  void flush();

  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& event);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace fme
