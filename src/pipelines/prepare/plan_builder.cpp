#include "pipelines/prepare/plan_builder.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "models/layers.h"
#include "models/tensor_io.h"
#include "util/error.h"

namespace fme {

namespace {
std::string dtype_str(at::ScalarType t) {
  if (t == at::kBFloat16) return "bf16";
  if (t == at::kHalf) return "fp16";
  return "fp32";
}
}  // namespace

namespace {
struct SingleProcess : Collective {
  void all_reduce_sum(at::Tensor&) override {}
  at::Tensor all_gather_last_dim(const at::Tensor& x) override { return x; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
};
}  // namespace

namespace {
// The module's class as HF names it: "fme::(anonymous namespace)::BertLMPredictionHeadImpl" -> "BertLMPredictionHead".
std::string class_name(const torch::nn::Module& m) {
  std::string n = m.name();
  if (const auto colon = n.rfind("::"); colon != std::string::npos) n = n.substr(colon + 2);
  if (n.size() > 4 && n.compare(n.size() - 4, 4, "Impl") == 0) n.resize(n.size() - 4);
  return n;
}
}  // namespace

std::vector<plans::ModuleDesc> describe_modules(Model& model) {
  std::vector<plans::ModuleDesc> out;
  for (const auto& item : model.module().named_modules("", /*include_self=*/false)) {
    torch::nn::Module& m = *item.value();
    std::string type;
    if (m.as<Conv1DImpl>()) type = "Conv1D";
    else if (m.as<LinearImpl>()) type = "Linear";
    else if (m.as<EmbeddingImpl>()) type = "Embedding";
    else if (m.as<LayerNormImpl>()) type = "LayerNorm";
    else if (m.as<RMSNormImpl>()) type = "RMSNorm";
    else if (!m.named_parameters(/*recurse=*/false).is_empty()) type = class_name(m);  // holds its own (BERT's cls.predictions.bias)
    else continue;  // containers
    plans::ModuleDesc d{item.key(), type, {}, 1};
    if (auto* lin = m.as<LinearImpl>()) d.fused_parts = lin->parts;
    for (const auto& p : m.named_parameters(/*recurse=*/false))
      d.params.push_back({p.key(), p.value().sizes().vec(), dtype_str(p.value().scalar_type()), true});
    out.push_back(std::move(d));
  }
  return out;
}

PlanBuilder::PlanBuilder(const plans::PlanTable& table, int64_t rank, std::shared_ptr<dist::Dist> dist,
                         PageSize pages)
    : table_(table), rank_(rank), dist_(std::move(dist)) {
  std::vector<TensorArena::Slot> slots;
  for (const plans::ParamRow* p : table_.all_params()) {
    params_[p->name] = p;
    slot_[p->name] = slots.size();
    slots.push_back({p->local_shape, parse_scalar_type(p->dtype, p->name)});
  }
  arena_ = TensorArena(slots, pages);
}

at::Tensor PlanBuilder::param(const std::string& path, const std::vector<int64_t>& global_shape) {
  auto it = params_.find(path);
  if (it == params_.end()) throw Error("prepare: parameter '" + path + "' is not in the plan table");
  const plans::ParamRow& row = *it->second;
  if (row.global_shape != global_shape) throw ShapeError("prepare: parameter '" + path + "' changed shape after planning");
  ShardInfo info{global_shape, -1, 0, 1};
  for (size_t d = 0; d < row.spec.dims.size(); ++d)
    if (row.spec.dims[d]) {
      info.dim = static_cast<int>(d);
      info.offset = row.shard_offset(d, table_.mesh, rank_);
      info.parts = row.parts;
    }
  shards_[path] = info;
  // Fresh zero pages: init or the checkpoint fills every element.
  at::Tensor t = arena_.tensor(slot_.at(path));
  t.set_requires_grad(row.trainable);
  return t;
}

ModuleParallel PlanBuilder::parallel(const std::string& module_path) {
  ModuleParallel par;
  const plans::ModuleRow* row = table_.find(module_path);
  if (!row) return par;
  if (row->sharding != plans::Sharding::None) {
    par.split = row->sharding == plans::Sharding::Colwise ? Split::Colwise : Split::Rowwise;
    par.axis = row->shard_axis;
    if (!dist_) {
      static auto single = std::make_shared<SingleProcess>();  // one process: axis size 1, identities
      par.group = single;
    } else {
      auto& g = groups_[row->shard_axis];
      if (!g) g = std::make_shared<AxisCollective>(dist_, row->shard_axis);
      par.group = g;
    }
  }
  if (row->lora_r) {
    par.lora_r = *row->lora_r;
    par.lora_alpha = row->lora_alpha;
  }
  return par;
}

}  // namespace fme
