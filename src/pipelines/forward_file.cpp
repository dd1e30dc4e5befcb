#include "util/shape.h"
#include "pipelines/forward_file.h"

#include <ATen/ATen.h>

#include "models/hook_select.h"
#include "models/padded_batch.h"
#include "models/tensor_io.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

namespace fme {
namespace {


// An integer [B,T] tensor from the file, as int64.
at::Tensor int_matrix(const std::map<std::string, at::Tensor>& t, const std::string& name, const std::string& path,
                      bool required) {
  auto it = t.find(name);
  if (it == t.end()) {
    if (required) throw ShapeError(path + ": missing tensor '" + name + "' (expected int64 [B, T])");
    return {};
  }
  const at::Tensor& x = it->second;
  if (at::isFloatingType(x.scalar_type()) || x.scalar_type() == at::kBool)
    throw ShapeError(path + ": tensor '" + name + "' has dtype " + std::string(c10::toString(x.scalar_type())) +
                     "; expected an integer type (int64)");
  if (x.dim() != 2) throw ShapeError(path + ": tensor '" + name + "' has shape " + shape_str(x.sizes()) + "; expected [B, T]");
  return x.to(at::kLong);
}

}  // namespace

Batch read_batch(const std::string& path, const Model& model) {
  auto t = read_safetensors(path);
  Batch b;
  b.input_ids = int_matrix(t, "input_ids", path, true);
  b.attention_mask = int_matrix(t, "attention_mask", path, true);
  b.token_type_ids = int_matrix(t, "token_type_ids", path, false);
  if (b.attention_mask.sizes() != b.input_ids.sizes())
    throw ShapeError(path + ": attention_mask has shape " + shape_str(b.attention_mask.sizes()) +
                     " but input_ids has " + shape_str(b.input_ids.sizes()));
  if (b.token_type_ids.defined() && b.token_type_ids.sizes() != b.input_ids.sizes())
    throw ShapeError(path + ": token_type_ids has shape " + shape_str(b.token_type_ids.sizes()) +
                     " but input_ids has " + shape_str(b.input_ids.sizes()));
  if (b.input_ids.numel() == 0) throw ShapeError(path + ": input_ids is empty");

  const int64_t lo = b.input_ids.min().item<int64_t>(), hi = b.input_ids.max().item<int64_t>();
  if (lo < 0 || hi >= model.vocab_size())
    throw ShapeError(path + ": input_ids holds id " + std::to_string(lo < 0 ? lo : hi) + ", outside the model's vocabulary [0, " +
                     std::to_string(model.vocab_size()) + ")");
  at::Tensor m = b.attention_mask;
  if (m.lt(0).any().item<bool>() || m.gt(1).any().item<bool>())
    throw ShapeError(path + ": attention_mask must hold only 0 and 1");
  // Right padding: each row is 1...1 0...0 (positions are 0..T-1, as HF computes them without a cache).
  if (m.size(1) > 1 && m.narrow(1, 1, m.size(1) - 1).gt(m.narrow(1, 0, m.size(1) - 1)).any().item<bool>())
    throw ShapeError(path + ": attention_mask is not right-padded (a 1 follows a 0 in some row)");
  if (b.token_type_ids.defined()) {
    if (model.token_types() == 0)
      throw ShapeError(path + ": token_type_ids given, but a " + model.model_type() + " model takes none");
    const int64_t tlo = b.token_type_ids.min().item<int64_t>(), thi = b.token_type_ids.max().item<int64_t>();
    if (tlo < 0 || thi >= model.token_types())
      throw ShapeError(path + ": token_type_ids holds " + std::to_string(tlo < 0 ? tlo : thi) + ", outside [0, " +
                       std::to_string(model.token_types()) + ")");
  }
  return b;
}

Batch read_text_batch(const std::string& jsonl_path, const Tokenizer& tokenizer, const Model& model) {
  std::vector<std::vector<int32_t>> rows;
  const std::string text = read_file(jsonl_path);
  size_t start = 0;
  for (int64_t line_no = 1; start < text.size(); ++line_no) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = jsonl_path + ":" + std::to_string(line_no);
    rows.push_back(tokenizer.encode(require<std::string>(parse_json(line, where), "text", where)));
    if (rows.back().empty()) throw ShapeError(where + ": text has no tokens");
  }
  if (rows.empty()) throw ShapeError(jsonl_path + ": no lines with a \"text\" field");
  std::vector<const std::vector<int32_t>*> ptrs;
  for (const auto& r : rows) {
    for (int32_t id : r)
      if (id >= model.vocab_size())
        throw ShapeError(jsonl_path + ": token id " + std::to_string(id) + " is outside the model's vocabulary of " +
                         std::to_string(model.vocab_size()));
    ptrs.push_back(&r);
  }
  return right_padded_batch(ptrs);
}

std::vector<std::string> forward_hooks(const Model& model, const std::string& spec) {
  const auto points = model.hook_points();
  if (!spec.empty()) return select_hooks(spec, points);
  std::vector<std::string> all;
  for (const auto& p : points) all.push_back(p.name);
  return all;
}

uint64_t forward_to_file(Model& model, const Batch& batch, const std::vector<std::string>& hooks,
                         const std::string& out_path, const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  model.forward(batch, Capture(model.hook_points(), hooks, [&](const std::string& name, const at::Tensor& x) {
                  out.emplace_back(name, x.to(at::kFloat).contiguous());
                }));
  out.emplace_back("input_ids", batch.input_ids);
  out.emplace_back("attention_mask", batch.attention_mask);
  if (batch.token_type_ids.defined()) out.emplace_back("token_type_ids", batch.token_type_ids);
  std::map<std::string, std::string> meta{{"format", "pt"}, {"generator", "fme forward"}, {"model_type", model.model_type()}};
  meta.insert(metadata.begin(), metadata.end());
  return write_safetensors(out_path, out, meta);
}

}  // namespace fme
