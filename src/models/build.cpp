#include "models/build.h"

#include <ATen/ATen.h>

namespace fme {

PlainBuilder::PlainBuilder(at::TensorOptions options) : options_(options) {}

at::Tensor PlainBuilder::param(const std::string& path, const std::vector<int64_t>& global_shape) {
  shards_[path] = ShardInfo{global_shape, -1, 0};
  return at::empty(global_shape, options_);
}

}  // namespace fme
