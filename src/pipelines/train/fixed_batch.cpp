#include "pipelines/train/fixed_batch.h"

#include <ATen/ATen.h>

#include "models/tensor_io.h"
#include "util/error.h"
#include "util/shape.h"

namespace fme {

LabeledBatch LabeledBatch::slice(int64_t first, int64_t n) const {
  auto cut = [&](const at::Tensor& t) { return t.defined() ? t.narrow(0, first, n) : t; };
  return {{cut(batch.input_ids), cut(batch.attention_mask), cut(batch.token_type_ids), cut(batch.segment_ids),
           cut(batch.position_ids)},
          cut(labels)};
}

LabeledBatch read_fixed_batch(const std::string& path, const Model& model) {
  const auto tensors = read_safetensors(path);
  auto field = [&](const std::string& name, bool required) -> at::Tensor {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (required) throw ShapeError(path + ": no tensor '" + name + "' (expected input_ids, labels, optional attention_mask, token_type_ids)");
      return {};
    }
    const at::Tensor& t = it->second;
    if (at::isFloatingType(t.scalar_type()) || t.scalar_type() == at::kBool)
      throw ShapeError(path + ": tensor '" + name + "' has dtype " + std::string(c10::toString(t.scalar_type())) +
                       "; expected an integer type");
    return t.to(at::kLong);
  };
  LabeledBatch out;
  at::Tensor ids = field("input_ids", true);
  if (ids.dim() != 2 || ids.size(0) == 0 || ids.size(1) < 2)
    throw ShapeError(path + ": tensor 'input_ids' has shape " + shape_str(ids.sizes()) + "; expected [B,T] with B >= 1, T >= 2");
  auto same_shape = [&](const at::Tensor& t, const std::string& name) {
    if (t.defined() && t.sizes() != ids.sizes())
      throw ShapeError(path + ": tensor '" + name + "' has shape " + shape_str(t.sizes()) + "; expected " +
                       shape_str(ids.sizes()) + " (that of input_ids)");
  };
  at::Tensor mask = field("attention_mask", false), types = field("token_type_ids", false), labels = field("labels", true);
  same_shape(mask, "attention_mask");
  same_shape(types, "token_type_ids");
  same_shape(labels, "labels");
  const int64_t V = model.vocab_size();
  if (ids.lt(0).any().item<bool>() || ids.ge(V).any().item<bool>())
    throw ShapeError(path + ": tensor 'input_ids' holds ids outside the vocabulary [0, " + std::to_string(V) + ")");
  if (labels.ne(-100).logical_and(labels.lt(0).logical_or(labels.ge(V))).any().item<bool>())
    throw ShapeError(path + ": tensor 'labels' holds values that are neither -100 nor ids in [0, " + std::to_string(V) + ")");
  if (!mask.defined()) mask = at::ones_like(ids);
  if (mask.ne(0).logical_and(mask.ne(1)).any().item<bool>())
    throw ShapeError(path + ": tensor 'attention_mask' holds values other than 0 and 1");
  if (types.defined()) {
    if (model.token_types() == 0) throw ShapeError(path + ": tensor 'token_type_ids' given, but " + model.model_type() + " takes none");
    if (types.lt(0).any().item<bool>() || types.ge(model.token_types()).any().item<bool>())
      throw ShapeError(path + ": tensor 'token_type_ids' holds types outside [0, " + std::to_string(model.token_types()) + ")");
  }
  if (model.max_positions() > 0 && ids.size(1) > model.max_positions())
    throw ShapeError(path + ": sequences of " + std::to_string(ids.size(1)) + " tokens exceed the model's " +
                     std::to_string(model.max_positions()) + " positions");
  out.batch = {ids, mask, types};
  out.labels = labels;
  return out;
}

}  // namespace fme
