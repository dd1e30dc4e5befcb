// The architecture table: model config type -> factory. Adding an architecture adds a config struct, a model
// file and one row here.
#include "models/model.h"

#include <torch/nn/module.h>

#include "models/bert.h"
#include "models/decoder.h"
#include "models/gpt2.h"

namespace fme {
namespace {
template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;
}  // namespace

std::unique_ptr<Model> create_model(const ModelConfig& config, Builder& builder) {
  auto model = std::visit(Overloaded{
                              [&](const DecoderConfig& c) { return make_decoder(c, builder); },
                              [&](const BertConfig& c) { return make_bert(c, builder); },
                              [&](const Gpt2Config& c) { return make_gpt2(c, builder); },
                          },
                          config);
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

}  // namespace fme
