// Building a model through the architecture registry, and Model's own helpers.
#include "models/model.h"

#include <torch/nn/module.h>

#include "models/architecture.h"

namespace fme {

std::unique_ptr<Model> create_model(const ModelConfig& config, Builder& builder) {
  auto model = architecture_for(config).create(config, builder);
  model->set_shards(builder.shards());
  model->set_compute_dtype(model->dtype());
  return model;
}

std::unique_ptr<Model> create_model(const ModelConfig& config, at::TensorOptions options) {
  PlainBuilder builder(options);
  return create_model(config, builder);
}

std::vector<std::pair<std::string, at::Tensor>> Model::named_parameters() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : module().named_parameters(/*recurse=*/true)) out.emplace_back(item.key(), item.value());
  return out;
}

void Model::to(at::ScalarType dtype) {
  module().to(dtype);
  compute_dtype_ = dtype;
}

at::ScalarType Model::dtype() {
  for (const auto& p : module().parameters()) return p.scalar_type();
  return at::kFloat;
}

at::Tensor attention_keys(const Batch& batch) {
  if (!batch.segment_ids.defined()) return batch.attention_mask.to(at::kBool);        // [B,T]
  return batch.segment_ids.to(at::kLong) * batch.attention_mask.ne(0).to(at::kLong);  // [B,T], 0 = padding
}

at::Tensor position_ids(const Batch& batch) {
  if (batch.position_ids.defined()) return batch.position_ids;                          // [B,T]
  return at::arange(batch.input_ids.size(1), batch.input_ids.options().dtype(at::kLong)).unsqueeze(0);  // [1,T]
}

}  // namespace fme
