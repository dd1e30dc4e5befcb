// `fme prepare`: the C++ counterpart of the seed's make_module_opt(module, optimizer, mesh, plans) — build a
// model, resolve glob-pattern plans over its module tree into one explicit table, materialise only this
// process's shards (initialised by global element index, or read as slices of a checkpoint), and create the
// optimizer state for the selected parameters. One call returns the module and its optimizer.
//
// Order of work (each timed): build a shape-only model on the meta device -> plans (parse + resolve) ->
// partition specs (per-parameter shard placement) -> shard (allocate local tensors) -> init (or load) ->
// optimizer (state on fresh zero pages).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/process_group.h"
#include "models/model.h"
#include "optim/factory.h"
#include "plans/resolve.h"
#include "fill/fresh_memory.h"
#include "util/json.h"

namespace fme {

struct PrepareOptions {
  std::string model_preset;          // or
  std::string model_dir;             // an HF checkpoint: each process reads only its slices
  std::vector<std::string> plans;    // plan files, or builtin:bert-tp / builtin:qwen2-tp
  std::string mesh;                  // "tp=2", "dp=2,tp=2"; empty: all processes on one "tp"-free mesh
  std::string dtype = "fp32";        // parameter dtype before plans (cast transforms may change it)
  uint64_t seed = 0;
  std::string optimizer = "adamw";   // adamw | adam | sgd | none
  std::vector<std::string> wrt;      // glob patterns over parameter names the optimizer updates; empty: all
                                     // trainable floating parameters (with LoRA: the adapters)
  OptimizerConfig optim;             // hyper-parameters (name is taken from `optimizer`)
  PageSize pages = PageSize::kProbe;  // the parameter arena's pages: measured (kProbe), 4 KiB or huge
  int threads = 0;                   // for init's fills (0: at::get_num_threads())
  // Training: the model gets the LM head its objective needs, added and initialised where a checkpoint
  // lacks it (a BertModel checkpoint becomes BertForMaskedLM with HF's initialisation of cls.*).
  bool lm_head = false;
  // With any LoRA adapter in the plans, only the adapters train (PEFT's rule; fme train sets it). Otherwise
  // a LoRA rule freezes only its own module's base weights.
  bool lora_trains_only_adapters = false;
};

struct PrepareTimings {  // milliseconds
  double build = 0, plans = 0, specs = 0, shard = 0, init = 0, optimizer = 0, total = 0;
};

struct Prepared {
  std::shared_ptr<dist::Dist> dist;
  plans::PlanTable table;
  std::unique_ptr<Model> model;
  std::unique_ptr<Optimizer> optimizer;  // null with optimizer "none"
  PrepareTimings ms;
  int64_t global_params = 0, local_params = 0, local_param_bytes = 0, state_bytes = 0;
  bool arena_huge_pages = false;                   // what the arena ended up advised with
  double page_probe_small_ms = 0, page_probe_huge_ms = 0;  // PageSize::kProbe's measurement (0: not run)
  Json summary() const;  // counts, bytes, timings
};

// `dist` may be null for a single process. Throws ConfigError/ShapeError/... with clear messages.
Prepared make_module_opt(const PrepareOptions& o, std::shared_ptr<dist::Dist> dist);

// Gathers every parameter's shards (along its sharded dim, over its mesh axis) and, on rank 0, writes an
// HF model directory (config.json + model.safetensors, LoRA adapters included): the model as one process
// would hold it. Collective: every rank must call it.
void save_gathered(Prepared& p, const std::string& dir);

// The whole tensor of parameter `name` (a module parameter name) from this process's part `local` of it
// (the parameter, or its gradient): gathered along each sharded dim over that dim's mesh axis. Collective
// over those axes: every process of them must call it. `local` itself (detached) when it is whole.
at::Tensor gather_whole(const plans::PlanTable& table, const std::string& name, const at::Tensor& local, dist::Dist* dist);

// How many of the `world` processes hold the same local tensor of parameter `name`: all for a whole one;
// for a sharded one, those along the mesh axes it is not split over (dp=2,tp=2 and a tp shard: 2).
int64_t holders(const plans::PlanTable& table, const std::string& name, int64_t world);

// The plans of `spec`: a file path or builtin:NAME.
std::vector<plans::Plan> load_plan_spec(const std::string& spec);

}  // namespace fme
