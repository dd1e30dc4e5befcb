// safetensors reader (validate the whole header first, then view tensor bytes in the mapping) and
// writer (header padded to 8 bytes, data streamed from the caller's buffers into an AtomicFile).
#include "util/sha256.h"
#include "util/shape.h"
#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "util/error.h"
#include "util/json.h"

namespace fme {
namespace {

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}


std::string json_list_str(const Json& a) {
  std::string s = "[";
  for (size_t i = 0; i < a.size() && i < 16; ++i) s += (i ? ", " : "") + describe_json(a[i]);
  if (a.size() > 16) s += ", ...";
  return s + "]";
}

// A name for a message: quoted, and cut when a hostile header makes it huge.
std::string quoted(const std::string& s) {
  constexpr size_t kMax = 200;
  return "'" + (s.size() <= kMax ? s : s.substr(0, kMax) + "...") + "'";
}

std::string range_str(uint64_t b, uint64_t e) { return "[" + std::to_string(b) + ", " + std::to_string(e) + "]"; }

// Product of the dimensions times the element size, or false on 64-bit overflow.
bool checked_nbytes(const std::vector<int64_t>& shape, size_t elem, uint64_t* out) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  return !__builtin_mul_overflow(n, static_cast<uint64_t>(elem), out);
}

// One header entry -> TensorInfo, with the per-tensor checks that need no other tensor.
TensorInfo parse_entry(const std::string& name, const Json& v, uint64_t data_len, const std::string& what) {
  const std::string at = what + ": tensor " + quoted(name) + ": ";
  if (!v.is_object())
    throw FormatError(at + "entry must be an object with dtype, shape and data_offsets, got " + describe_json(v));
  TensorInfo t;
  t.name = name;

  auto dt = v.find("dtype");
  if (dt == v.end()) throw FormatError(at + "missing 'dtype'");
  if (!dt->is_string()) throw FormatError(at + "'dtype' must be a string, got " + describe_json(*dt));
  auto parsed = parse_dtype(dt->get_ref<const std::string&>());
  if (!parsed) throw FormatError(at + "unknown dtype " + quoted(dt->get_ref<const std::string&>()));
  t.dtype = *parsed;

  auto sh = v.find("shape");
  if (sh == v.end()) throw FormatError(at + "missing 'shape'");
  if (!sh->is_array()) throw FormatError(at + "'shape' must be an array, got " + describe_json(*sh));
  for (const Json& d : *sh) {
    if (d.is_number_unsigned()) {
      uint64_t u = d.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw FormatError(at + "shape " + json_list_str(*sh) + " has a dimension too large");
      t.shape.push_back(static_cast<int64_t>(u));
    } else if (d.is_number_integer()) {
      throw FormatError(at + "shape " + json_list_str(*sh) + " has a negative dimension");
    } else {
      throw FormatError(at + "shape " + json_list_str(*sh) + " must hold non-negative integers, got " +
                        describe_json(d));
    }
  }

  auto off = v.find("data_offsets");
  if (off == v.end()) throw FormatError(at + "missing 'data_offsets'");
  if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
    throw FormatError(at + "'data_offsets' must be two non-negative integers [begin, end], got " +
                      (off->is_array() ? json_list_str(*off) : describe_json(*off)));
  t.begin = (*off)[0].get<uint64_t>();
  t.end = (*off)[1].get<uint64_t>();
  const std::string offs = "data_offsets " + range_str(t.begin, t.end);
  if (t.begin > t.end) throw FormatError(at + offs + " begin after end");

  uint64_t need = 0;
  if (!checked_nbytes(t.shape, dtype_size(t.dtype), &need))
    throw FormatError(at + "shape " + shape_str(t.shape) + " of " + std::string(dtype_name(t.dtype)) +
                      " overflows 64-bit byte counts");
  if (t.end - t.begin != need)
    throw FormatError(at + "dtype " + std::string(dtype_name(t.dtype)) + " shape " + shape_str(t.shape) + " needs " +
                      std::to_string(need) + " bytes but " + offs + " hold " + std::to_string(t.end - t.begin));
  if (t.end > data_len)
    throw FormatError(at + offs + " end past the data section (" + std::to_string(data_len) + " bytes)");
  return t;
}

}  // namespace

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t n, uint64_t file_size,
                                           const std::string& what) {
  if (file_size < 8)
    throw FormatError(what + ": truncated: file has " + std::to_string(file_size) +
                      " bytes, the 8-byte header length needs 8");
  if (n < 8) throw FormatError(what + ": only " + std::to_string(n) + " bytes given, the header length needs 8");
  const uint64_t hlen = read_le64(bytes);
  if (hlen > kMaxSafetensorsHeader)
    throw FormatError(what + ": header length " + std::to_string(hlen) + " exceeds the limit of " +
                      std::to_string(kMaxSafetensorsHeader) + " bytes");
  const uint64_t data_start = 8 + hlen;  // cannot overflow: hlen <= 1e8
  if (data_start > file_size)
    throw FormatError(what + ": truncated: file has " + std::to_string(file_size) + " bytes, the " +
                      std::to_string(hlen) + "-byte header needs " + std::to_string(data_start));
  if (data_start > n)
    throw FormatError(what + ": only " + std::to_string(n) + " bytes given, the header needs " +
                      std::to_string(data_start));
  const uint64_t data_len = file_size - data_start;

  // Trailing spaces (the writers' 8-byte padding) are JSON whitespace, so the parser accepts them.
  std::string_view text(reinterpret_cast<const char*>(bytes) + 8, static_cast<size_t>(hlen));
  Json h = parse_json_unique_keys(text, what + ": header", 64);
  if (!h.is_object()) throw FormatError(what + ": header must be a JSON object, got " + describe_json(h));

  SafetensorsHeader out;
  out.data_start = data_start;
  for (const auto& [key, v] : h.items()) {
    if (key == "__metadata__") {
      if (v.is_null()) continue;
      if (!v.is_object())
        throw FormatError(what + ": __metadata__ must be an object mapping strings to strings, got " + describe_json(v));
      for (const auto& [mk, mv] : v.items()) {
        if (!mv.is_string())
          throw FormatError(what + ": __metadata__ key " + quoted(mk) + " must be a string, got " + describe_json(mv));
        out.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    out.tensors.push_back(parse_entry(key, v, data_len, what));
  }

  // Regions must tile the data section: sorted by (begin, end) as the reference does, each starts
  // where the previous ended. Anything else is a gap (hidden bytes) or an overlap (aliased tensors).
  std::sort(out.tensors.begin(), out.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  uint64_t pos = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : out.tensors) {
    const std::string offs = "data_offsets " + range_str(t.begin, t.end);
    if (t.begin < pos)
      throw FormatError(what + ": tensor " + quoted(t.name) + ": " + offs + " overlap tensor " + quoted(prev->name) + " " +
                        range_str(prev->begin, prev->end));
    if (t.begin > pos) {
      if (!prev)
        throw FormatError(what + ": tensor " + quoted(t.name) + ": " + offs + " leave a gap: the first " +
                          std::to_string(t.begin) + " bytes of the data section belong to no tensor");
      throw FormatError(what + ": tensor " + quoted(t.name) + ": " + offs + " leave a gap of " +
                        std::to_string(t.begin - pos) + " bytes after tensor " + quoted(prev->name) + " " +
                        range_str(prev->begin, prev->end));
    }
    pos = t.end;
    prev = &t;
  }
  if (pos != data_len) {
    if (!prev)
      throw FormatError(what + ": the header lists no tensors but the data section has " + std::to_string(data_len) +
                        " bytes");
    throw FormatError(what + ": the data section has " + std::to_string(data_len) + " bytes but the tensors cover " +
                      std::to_string(pos) + " (last tensor " + quoted(prev->name) + " ends at " + std::to_string(pos) + ")");
  }
  return out;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto f = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  f->file_ = MappedFile::open(path);
  f->header_ = parse_safetensors_header(f->file_->data(), f->file_->size(), f->file_->size(), path);
  for (size_t i = 0; i < f->header_.tensors.size(); ++i) f->index_.emplace(f->header_.tensors[i].name, i);
  return f;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const TensorInfo& SafetensorsFile::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) throw ShapeError(path() + ": no tensor '" + name + "'");
  return *t;
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
                            size_t nbytes) {
  const std::string at = "safetensors writer: tensor '" + name + "': ";
  if (name == "__metadata__") throw ShapeError(at + "the name is reserved for the metadata");
  for (const Entry& e : entries_)
    if (e.name == name) throw ShapeError(at + "added twice");
  for (int64_t d : shape)
    if (d < 0) throw ShapeError(at + "shape " + shape_str(shape) + " has a negative dimension");
  uint64_t need = 0;
  if (!checked_nbytes(shape, dtype_size(dtype), &need))
    throw ShapeError(at + "shape " + shape_str(shape) + " overflows 64-bit byte counts");
  if (need != nbytes)
    throw ShapeError(at + "dtype " + std::string(dtype_name(dtype)) + " shape " + shape_str(shape) + " needs " +
                     std::to_string(need) + " bytes, got " + std::to_string(nbytes));
  if (nbytes > 0 && data == nullptr) throw ShapeError(at + "data is null");
  entries_.push_back(Entry{name, dtype, std::move(shape), {{data, nbytes}}, nbytes});
}

void SafetensorsWriter::add_chunks(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                   std::vector<std::pair<const void*, size_t>> chunks) {
  size_t total = 0;
  for (const auto& c : chunks) {
    if (c.second > 0 && c.first == nullptr) throw ShapeError("safetensors writer: tensor '" + name + "': a chunk is null");
    total += c.second;
  }
  add(name, dtype, std::move(shape), chunks.empty() ? nullptr : chunks.front().first, total);  // validates
  entries_.back().chunks = std::move(chunks);
}

uint64_t SafetensorsWriter::write(const std::string& path, std::string* sha256_hex) const {
  // ordered_json keeps the header in the order tensors were added, matching the data order.
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata_.empty()) h["__metadata__"] = metadata_;
  uint64_t pos = 0;
  for (const Entry& e : entries_) {
    nlohmann::ordered_json t;
    t["dtype"] = std::string(dtype_name(e.dtype));
    t["shape"] = e.shape;
    t["data_offsets"] = {pos, pos + e.nbytes};
    h[e.name] = std::move(t);
    pos += e.nbytes;
  }
  std::string text;
  try {
    text = h.dump();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": cannot write header (a tensor name or metadata string is not valid UTF-8): " + e.what());
  }
  // Pad with spaces so 8 + N is a multiple of 8 and every tensor starts 8-aligned when its
  // predecessors' sizes allow (as the reference writer does).
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxSafetensorsHeader)
    throw FormatError(path + ": header of " + std::to_string(text.size()) + " bytes exceeds the limit of " +
                      std::to_string(kMaxSafetensorsHeader));
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));

  AtomicFile f(path);
  Sha256 hash;
  auto out = [&](const void* p, size_t n) {
    f.write(p, n);
    if (sha256_hex) hash.update(p, n);
  };
  out(len, sizeof len);
  out(text.data(), text.size());
  for (const Entry& e : entries_)
    for (const auto& [p, n] : e.chunks)
      if (n) out(p, n);  // straight from the caller's buffers: no concatenated copy
  f.commit();
  if (sha256_hex) *sha256_hex = hash.hex_digest();
  return f.bytes_written();
}

}  // namespace fme
