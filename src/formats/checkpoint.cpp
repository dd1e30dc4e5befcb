// Opens a Hugging Face checkpoint directory (one safetensors file, or an index with shards) and checks
// that the index and the shards agree exactly, so every tensor name resolves to one place.
#include "formats/checkpoint.h"

#include <sys/stat.h>

#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

namespace fme {
namespace {

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Shard names come from a file we did not write; keep them inside the checkpoint directory.
bool safe_shard_name(const std::string& s) {
  if (s.empty() || s[0] == '/') return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t slash = s.find('/', start);
    if (slash == std::string::npos) slash = s.size();
    std::string part = s.substr(start, slash - start);
    if (part == ".." || part.empty()) return false;
    start = slash + 1;
  }
  return true;
}

}  // namespace

const Checkpoint::Entry* Checkpoint::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Checkpoint Checkpoint::open(const std::string& dir) {
  Checkpoint c;
  c.dir_ = dir;
  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";

  // Same preference as transformers: the single file wins when both exist.
  if (is_file(single)) {
    auto f = SafetensorsFile::open(single);
    for (const TensorInfo& t : f->tensors()) c.tensors_.emplace(t.name, Entry{f.get(), &t});
    c.files_.push_back(std::move(f));
    return c;
  }
  if (!is_file(index)) {
    if (!is_dir(dir)) throw IoError(dir + ": not a directory (expected a checkpoint directory)");
    std::string hint;
    if (is_file(dir + "/pytorch_model.bin") || is_file(dir + "/pytorch_model.bin.index.json"))
      hint = " (pytorch_model.bin is not supported: convert the checkpoint to safetensors)";
    throw IoError(dir + ": no weights: found neither model.safetensors nor model.safetensors.index.json" + hint);
  }

  Json j = parse_json_unique_keys(read_file(index), index);
  if (!j.is_object()) throw FormatError(index + ": must be a JSON object, got " + describe_json(j));
  auto wm = j.find("weight_map");
  if (wm == j.end()) throw FormatError(index + ": missing required key 'weight_map'");
  if (!wm->is_object()) throw FormatError(index + ": 'weight_map' must be an object, got " + describe_json(*wm));

  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (const auto& [name, v] : wm->items()) {
    if (!v.is_string())
      throw FormatError(index + ": weight_map entry '" + name + "' must be a shard file name, got " + describe_json(v));
    const std::string& shard = v.get_ref<const std::string&>();
    if (!safe_shard_name(shard))
      throw FormatError(index + ": tensor '" + name + "' maps to '" + shard +
                        "', which is not a relative path inside the checkpoint directory");
    auto it = shards.find(shard);
    if (it == shards.end()) {
      const std::string path = dir + "/" + shard;
      if (!is_file(path))
        throw IoError(index + ": tensor '" + name + "' maps to shard '" + shard + "', which does not exist (" + path +
                      ")");
      it = shards.emplace(shard, SafetensorsFile::open(path)).first;
      c.files_.push_back(it->second);
    }
    const TensorInfo* t = it->second->find(name);
    if (!t)
      throw FormatError(index + ": tensor '" + name + "' maps to shard '" + shard + "', which lacks it (" +
                        it->second->path() + ")");
    c.tensors_.emplace(name, Entry{it->second.get(), t});
  }

  // The reverse direction: a shard must hold nothing the index does not assign to it, otherwise the
  // same name would have two sources (or be invisible through the index).
  for (const auto& [shard, f] : shards) {
    for (const TensorInfo& t : f->tensors()) {
      const Entry* e = c.find(t.name);
      if (!e)
        throw FormatError(index + ": shard '" + shard + "' holds tensor '" + t.name + "', which the index does not list");
      if (e->file != f.get())
        throw FormatError(index + ": tensor '" + t.name + "' is in two shards: '" + shard + "' and '" +
                          wm->at(t.name).get<std::string>() + "' (the index names the latter)");
    }
  }
  return c;
}

}  // namespace fme
