#include "util/shape.h"
#include "models/loader.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "models/architecture.h"
#include "models/tensor_io.h"
#include "util/error.h"

namespace fme {
namespace {


bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

CheckpointNameMap::CheckpointNameMap(const Model& model, const Checkpoint& ckpt)
    : rules_(&architecture_for(model.config()).names) {
  for (const auto& r : rules_->prefixes) {
    const std::string stored = r.stored_prefix + r.probe.substr(r.model_prefix.size());
    if (ckpt.find(r.probe) == nullptr && ckpt.find(stored) != nullptr) renames_.push_back(&r);
  }
}

std::string CheckpointNameMap::operator()(const std::string& name) const {
  for (const auto* r : renames_) {
    if (!starts_with(name, r->model_prefix)) continue;
    if (std::any_of(r->keep.begin(), r->keep.end(), [&](const std::string& k) { return starts_with(name, k); })) continue;
    return r->stored_prefix + name.substr(r->model_prefix.size());
  }
  return name;
}

bool CheckpointNameMap::ignored(const std::string& stored) const { return rules_->ignored(stored); }

std::vector<std::string> CheckpointNameMap::renames() const {
  std::vector<std::string> out;
  for (const auto* r : renames_) out.push_back("'" + r->model_prefix + "*' stored as '" + r->stored_prefix + "*'");
  return out;
}

namespace {
// This process's part of the whole tensor `src`: one slice, or one per fused part laid side by side.
at::Tensor local_slice(const at::Tensor& src, const ShardInfo& shard, int64_t local) {
  if (shard.parts <= 1) return src.narrow(shard.dim, shard.offset, local);
  std::vector<at::Tensor> runs;
  for (int64_t p = 0; p < shard.parts; ++p) runs.push_back(src.narrow(shard.dim, shard.global_start(p), local / shard.parts));
  return at::cat(runs, shard.dim);
}
}  // namespace

LoadReport load_checkpoint(Model& model, const Checkpoint& ckpt, const std::set<std::string>& not_in_checkpoint) {
  LoadReport report;
  const std::string where = ckpt.dir();
  const CheckpointNameMap ckpt_name(model, ckpt);

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
    if (sharded) src = local_slice(src, shard->second, param.size(shard->second.dim));  // this process's slice
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
    if (ckpt_name.ignored(name)) {
      report.ignored.push_back(name);  // heads fme does not build, buffers it computes (the family's rules)
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

ModelConfig load_model_config(const std::string& dir, const Checkpoint& ckpt) {
  ModelConfig config = load_model_config(dir);
  const Architecture& arch = architecture_for(config);
  if (arch.fit_checkpoint) arch.fit_checkpoint(config, [&](const std::string& n) { return ckpt.find(n) != nullptr; });
  return config;
}

std::unique_ptr<Model> load_model(const std::string& dir, at::ScalarType dtype, LoadReport* report) {
  return load_model(dir, dtype, dtype, report);
}

std::unique_ptr<Model> load_model(const std::string& dir, at::ScalarType compute, at::ScalarType weights,
                                  LoadReport* report) {
  Checkpoint ckpt = Checkpoint::open(dir);
  ModelConfig config = load_model_config(dir, ckpt);
  auto model = create_model(config, at::TensorOptions().dtype(weights));  // uninitialised: the load fills it
  LoadReport r = load_checkpoint(*model, ckpt);
  model->set_compute_dtype(compute);
  if (report) *report = r;
  return model;
}

}  // namespace fme
