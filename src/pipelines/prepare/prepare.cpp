#include "pipelines/prepare/prepare.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>

#include <chrono>
#include <filesystem>
#include <set>

#include "formats/checkpoint.h"
#include "models/architecture.h"
#include "models/init.h"
#include "models/loader.h"
#include "models/presets.h"
#include "models/tensor_io.h"
#include "util/file.h"
#include "pipelines/prepare/plan_builder.h"
#include "plans/glob.h"
#include "plans/plan.h"
#include "util/error.h"

namespace fme {
namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::vector<plans::Plan> load_plan_spec(const std::string& spec) { return plans::load_plans(spec); }

namespace {
const plans::ParamRow* row_of(const plans::PlanTable& table, const std::string& name) {
  const auto dot = name.rfind('.');
  const plans::ModuleRow* m = dot == std::string::npos ? nullptr : table.find(name.substr(0, dot));
  return m ? m->param(name.substr(dot + 1)) : nullptr;
}
}  // namespace

at::Tensor gather_whole(const plans::PlanTable& table, const std::string& name, const at::Tensor& local, dist::Dist* dist) {
  const plans::ParamRow* row = row_of(table, name);
  at::Tensor full = local.detach();
  if (!row || !dist) return full;
  for (size_t d = 0; d < row->spec.dims.size(); ++d)
    if (row->spec.dims[d]) {
      const auto dim = static_cast<int64_t>(d);
      const int64_t n = dist->size(*row->spec.dims[d]);
      full = dist->all_gather(full.contiguous(), dim, *row->spec.dims[d]);
      // Fused parts: the gather is [rank][part][run]; the whole tensor is [part][rank][run].
      if (row->parts > 1 && n > 1)
        full = full.unflatten(dim, {n, row->parts, full.size(dim) / (n * row->parts)}).transpose(dim, dim + 1).flatten(dim, dim + 2);
    }
  return full;
}

int64_t holders(const plans::PlanTable& table, const std::string& name, int64_t world) {
  const plans::ParamRow* row = row_of(table, name);
  int64_t n = world;
  if (row)
    for (const auto& axis : row->spec.dims)
      if (axis) n /= table.mesh.size(*axis);
  return n;
}

void save_gathered(Prepared& p, const std::string& dir) {
  const bool lead = !p.dist || p.dist->rank() == 0;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& [name, t] : p.model->named_parameters()) {
    at::Tensor full = gather_whole(p.table, name, t, p.dist.get());
    if (lead) tensors.emplace_back(name, full);
  }
  if (!lead) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError(dir + ": cannot create directory: " + ec.message());
  write_safetensors((std::filesystem::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_file_atomic((std::filesystem::path(dir) / "config.json").string(), to_json(p.model->config()).dump(2) + "\n");
}

Json Prepared::summary() const {
  return Json{{"world_size", dist ? dist->world() : 1},
              {"rank", dist ? dist->rank() : 0},
              {"mesh", table.mesh.to_string()},
              {"global_params", global_params},
              {"local_params", local_params},
              {"local_param_bytes", local_param_bytes},
              {"optimizer_state_bytes", state_bytes},
              {"optimizer_state_untouched", optimizer ? optimizer->state_untouched() : true},
              {"param_pages", {{"huge", arena_huge_pages},
                               {"probe_ms_4k", page_probe_small_ms},
                               {"probe_ms_huge", page_probe_huge_ms}}},
              {"ms", {{"build", ms.build},
                      {"plans", ms.plans},
                      {"specs", ms.specs},
                      {"shard", ms.shard},
                      {"init", ms.init},
                      {"optimizer", ms.optimizer},
                      {"total", ms.total}}}};
}

Prepared make_module_opt(const PrepareOptions& o, std::shared_ptr<dist::Dist> dist) {
  using Clock = std::chrono::steady_clock;
  const auto t_all = Clock::now();
  Prepared out;
  out.dist = dist;
  if (o.model_preset.empty() == o.model_dir.empty()) throw ConfigError("prepare: give one of --model-preset or --model");
  const int64_t rank = dist ? dist->rank() : 0;

  // build: the architecture as a shape-only (meta) model: module paths, types and global shapes, no memory.
  auto t0 = Clock::now();
  ModelConfig config = o.model_dir.empty() ? find_preset(o.model_preset).config
                                           : load_model_config(o.model_dir, Checkpoint::open(o.model_dir));
  std::string added_head;  // path prefix of head parameters the checkpoint (or preset) lacks
  if (o.lm_head) {
    const Architecture& arch = architecture_for(config);
    if (arch.add_lm_head) added_head = arch.add_lm_head(config);
  }
  const at::ScalarType dtype = parse_scalar_type(o.dtype, "--dtype");
  std::vector<plans::ModuleDesc> modules;
  {
    auto shape_only = create_model(config, at::TensorOptions().device(at::kMeta).dtype(dtype));
    modules = describe_modules(*shape_only);
  }
  out.ms.build = ms_since(t0);

  // plans: parse and resolve in one traversal per plan into the explicit table.
  t0 = Clock::now();
  std::vector<plans::Plan> all_plans;
  std::vector<std::string> plan_specs = o.plans;
  // A tensor-parallel mesh without --plan: the architecture's own plan (its registry row).
  if (plan_specs.empty() && !o.mesh.empty() && plans::Mesh::parse(o.mesh).has("tp")) {
    const Architecture& arch = architecture_for(config);
    if (arch.tp_plan.empty())
      throw ConfigError("--mesh " + o.mesh + " without --plan: " + model_type(config) +
                        " has no built-in tensor-parallel plan; give one with --plan");
    plan_specs.push_back(arch.tp_plan);
  }
  for (const auto& spec : plan_specs) {
    auto p = load_plan_spec(spec);
    all_plans.insert(all_plans.end(), p.begin(), p.end());
  }
  plans::Mesh mesh = o.mesh.empty() ? plans::Mesh{} : plans::Mesh::parse(o.mesh);
  if (o.mesh.empty()) {  // a single process is a mesh whose axes (those the plans name) are all 1
    for (const auto& plan : all_plans)
      for (const auto& rule : plan.rules)
        if (!rule.transform.axis.empty() && !mesh.has(rule.transform.axis)) mesh.axes.push_back({rule.transform.axis, 1});
  }
  const int64_t world = dist ? dist->world() : 1;
  if (mesh.num_ranks() != world)
    throw ConfigError("mesh " + (o.mesh.empty() ? std::string("(none)") : o.mesh) + " has " + std::to_string(mesh.num_ranks()) +
                      " processes but the job has " + std::to_string(world));
  out.table = plans::resolve(modules, all_plans, mesh);
  out.ms.plans = ms_since(t0);

  // partition specs: each parameter's placement (sharded dim, offset for this rank) and local shape; the
  // arena that will hold them (with PageSize::kProbe, its first 64 MiB are faulted in here, measuring).
  t0 = Clock::now();
  std::set<std::string> lora_params;
  for (const plans::ParamRow* p : out.table.all_params()) {
    int64_t n = 1;
    for (int64_t d : p->global_shape) n *= d;
    out.global_params += n;
    if (p->added_by_lora) lora_params.insert(p->name);
  }
  PlanBuilder builder(out.table, rank, dist, o.pages);
  if (const FreshBuffer* arena = builder.arena()) {
    out.arena_huge_pages = arena->huge_pages();
    out.page_probe_small_ms = arena->probe_small_seconds() * 1000;
    out.page_probe_huge_ms = arena->probe_huge_seconds() * 1000;
  }
  out.ms.specs = ms_since(t0);

  // shard: the real model, each parameter allocated once at its local shape (never whole).
  t0 = Clock::now();
  out.model = create_model(config, builder);
  out.ms.shard = ms_since(t0);

  // init (or load this process's slices of the checkpoint).
  t0 = Clock::now();
  if (o.model_dir.empty()) {
    init_weights(*out.model, o.seed, /*fresh_memory=*/true, o.threads);
  } else {
    std::set<std::string> not_stored = lora_params;
    if (!added_head.empty())
      for (const auto& [name, p] : out.model->named_parameters())
        if (name.compare(0, added_head.size(), added_head) == 0) not_stored.insert(name);
    load_checkpoint(*out.model, Checkpoint::open(o.model_dir), not_stored);
    if (!lora_params.empty()) init_lora(*out.model, o.seed);
    if (!added_head.empty()) init_weights(*out.model, o.seed, /*fresh_memory=*/false, o.threads, added_head);
  }
  // Trainability comes from the table (register_parameter resets requires_grad).
  std::vector<OptParam> params;
  for (auto& item : out.model->module().named_parameters(true)) {
    const plans::ParamRow* row = nullptr;
    const auto dot = item.key().rfind('.');
    if (const auto* m = out.table.find(item.key().substr(0, dot))) row = m->param(item.key().substr(dot + 1));
    bool trainable = row ? row->trainable : true;
    if (trainable && o.lora_trains_only_adapters && !lora_params.empty()) trainable = lora_params.count(item.key()) > 0;
    if (trainable && !o.wrt.empty()) {  // wrt narrows the selection; it never unfreezes
      bool selected = false;
      for (const auto& pattern : o.wrt) selected = selected || plans::glob_match(pattern, item.key());
      trainable = selected;
    }
    item.value().set_requires_grad(trainable);
    out.local_params += item.value().numel();
    out.local_param_bytes += item.value().numel() * item.value().element_size();
    OptParam op;
    op.name = item.key();
    op.value = item.value();
    op.trainable = trainable;
    op.replicated_over_mesh = row ? row->spec.replicated() : true;
    if (!op.replicated_over_mesh) op.shard_copies = holders(out.table, item.key(), world);
    params.push_back(std::move(op));
  }
  out.ms.init = ms_since(t0);

  // optimizer: state for the selected parameters, on fresh zero pages.
  t0 = Clock::now();
  if (o.optimizer != "none") {
    OptimizerConfig oc = o.optim;
    oc.name = o.optimizer;
    if (oc.clip_norm && dist && dist->world() > 1) {
      std::shared_ptr<dist::Dist> d = dist;
      oc.allreduce_sum = [d](double x) {
        at::Tensor t = at::full({1}, x, at::kDouble);
        d->all_reduce_sum(t);
        return t.item<double>();
      };
      oc.replica_count = world;
    }
    out.optimizer = make_optimizer(std::move(params), oc);
    out.state_bytes = out.optimizer->state_bytes();
  }
  out.ms.optimizer = ms_since(t0);
  out.ms.total = ms_since(t_all);
  return out;
}

}  // namespace fme
