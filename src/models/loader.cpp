#include "util/shape.h"
#include "models/loader.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>

#include <set>
#include <sstream>

#include "models/tensor_io.h"
#include "util/error.h"

namespace fme {
namespace {


bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

}  // namespace

LoadReport load_checkpoint(Model& model, const Checkpoint& ckpt, const std::set<std::string>& not_in_checkpoint) {
  LoadReport report;
  const std::string where = ckpt.dir();
  // BertFor* checkpoints prefix the encoder with "bert."; accept it when the model's own names lack it.
  std::string prefix;
  if (model.model_type() == "bert" && ckpt.find("embeddings.word_embeddings.weight") == nullptr &&
      ckpt.find("bert.embeddings.word_embeddings.weight") != nullptr)
    prefix = "bert.";
  // GPT-2 checkpoints saved from GPT2Model (as the original OpenAI conversion) lack the "transformer." prefix.
  const bool strip_transformer = model.model_type() == "gpt2" && ckpt.find("transformer.wte.weight") == nullptr &&
                                 ckpt.find("wte.weight") != nullptr;
  auto ckpt_name = [&](const std::string& name) {
    if (strip_transformer && starts_with(name, "transformer.")) return name.substr(12);
    return prefix + name;
  };

  std::set<std::string> used;
  c10::InferenceMode guard;
  std::vector<std::string> missing;
  for (auto& [name, param] : model.named_parameters()) {
    if (not_in_checkpoint.count(name)) continue;
    const auto* e = ckpt.find(ckpt_name(name));
    if (e == nullptr) {
      missing.push_back(name);
      continue;
    }
    at::Tensor src = tensor_view(*e->file, *e->info);
    auto shard = model.shards().find(name);
    const bool sharded = shard != model.shards().end() && shard->second.dim >= 0;
    const at::IntArrayRef expected = sharded ? at::IntArrayRef(shard->second.global_shape) : param.sizes();
    if (src.sizes() != expected)
      throw ShapeError(e->file->path() + ": tensor '" + ckpt_name(name) + "' has wrong shape; expected " +
                       shape_str(expected) + ", got " + shape_str(src.sizes()));
    if (sharded) src = src.narrow(shard->second.dim, shard->second.offset, param.size(shard->second.dim));  // this process's slice
    if (!at::isFloatingType(src.scalar_type()))
      throw ShapeError(e->file->path() + ": tensor '" + ckpt_name(name) + "' has dtype " +
                       std::string(dtype_name(e->info->dtype)) + "; expected a floating type");
    param.detach().copy_(src);
    used.insert(ckpt_name(name));
    ++report.loaded;
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 5; ++i) list += (i ? ", " : "") + ("'" + missing[i] + "'");
    if (missing.size() > 5) list += ", ... (" + std::to_string(missing.size()) + " in all)";
    throw ShapeError(where + ": checkpoint lacks tensor " + list);
  }

  // Tied weights stored anyway must equal what they alias.
  for (const auto& [alias, target] : model.tied_parameters()) {
    const auto* e = ckpt.find(alias);
    const auto* te = ckpt.find(ckpt_name(target));
    if (e == nullptr || te == nullptr) continue;
    at::Tensor a = tensor_view(*e->file, *e->info).to(at::kFloat);
    at::Tensor t = tensor_view(*te->file, *te->info).to(at::kFloat);
    if (a.sizes() != t.sizes() || !at::equal(a, t))
      throw ShapeError(e->file->path() + ": tensor '" + alias + "' differs from '" + target +
                       "', but config.json ties them (tie_word_embeddings)");
    used.insert(alias);
    report.ignored.push_back(alias + " (tied to " + target + ")");
  }

  std::vector<std::string> unexpected;
  for (const auto& [name, entry] : ckpt.tensors()) {
    if (used.count(name)) continue;
    if (model.model_type() == "bert" && (starts_with(name, "cls.") || name == "bert.embeddings.position_ids" ||
                                         name == "embeddings.position_ids")) {
      report.ignored.push_back(name);  // MLM/NSP heads and HF's position_ids buffer: not part of the encoder
      continue;
    }
    if (model.model_type() == "gpt2" && (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias"))) {
      report.ignored.push_back(name);  // older GPT-2 exports store the causal-mask buffers; fme builds the mask
      continue;
    }
    if (model.model_type() != "bert" && ends_with(name, ".rotary_emb.inv_freq")) {
      report.ignored.push_back(name);  // older Llama exports store RoPE's buffer; fme computes it from the config
      continue;
    }
    unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    std::string list;
    for (size_t i = 0; i < unexpected.size() && i < 5; ++i) list += (i ? ", " : "") + ("'" + unexpected[i] + "'");
    if (unexpected.size() > 5) list += ", ... (" + std::to_string(unexpected.size()) + " in all)";
    throw ShapeError(where + ": unexpected tensor " + list + " (not a parameter of this " + model.model_type() +
                     " model)");
  }
  return report;
}

std::unique_ptr<Model> load_model(const std::string& dir, at::ScalarType dtype, LoadReport* report) {
  return load_model(dir, dtype, dtype, report);
}

std::unique_ptr<Model> load_model(const std::string& dir, at::ScalarType compute, at::ScalarType weights,
                                  LoadReport* report) {
  ModelConfig config = load_model_config(dir);
  Checkpoint ckpt = Checkpoint::open(dir);
  auto model = create_model(config, at::TensorOptions().dtype(weights));  // uninitialised: the load fills it
  LoadReport r = load_checkpoint(*model, ckpt);
  model->set_compute_dtype(compute);
  if (report) *report = r;
  return model;
}

}  // namespace fme
