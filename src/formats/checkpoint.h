// A Hugging Face checkpoint directory: model.safetensors, or model.safetensors.index.json with its
// shards ({"weight_map": {"<tensor>": "<shard file>"}}). Gives one name -> tensor view over all files.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace fme {

class Checkpoint {
 public:
  // Opens `dir`; throws IoError/FormatError naming the file if no weights are found or a shard is bad,
  // or if the index names a tensor its shard lacks.
  static Checkpoint open(const std::string& dir);

  struct Entry {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };
  const std::map<std::string, Entry>& tensors() const { return tensors_; }
  const Entry* find(const std::string& name) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry> tensors_;
};

}  // namespace fme
