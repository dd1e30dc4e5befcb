// fme prepare (--model-preset NAME | --model DIR) [--plan FILE]... [--mesh tp=2] [--optimizer adamw] [...]
// Builds the model, applies the plans, shards it over the mesh of launched processes and creates the
// optimizer state; prints the plan table (--explain) and counts with a per-stage time breakdown (--json).
#include <ATen/ATen.h>

#include <chrono>
#include <map>
#include <iostream>

#include "cli/command.h"
#include "dist/launch_env.h"
#include "pipelines/prepare/prepare.h"
#include "plans/explain.h"
#include "util/error.h"

namespace fme::cli {

void add_prepare(CLI::App& app) {
  struct Opts {
    PrepareOptions p;
    bool explain = false, json = false, first_step = false;
    std::string save;
    double timeout_s = 300;
    std::string schedule = "constant";
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("prepare", "Build a model, apply plans, shard it over a mesh and create optimizer state");
  cmd->add_option("--model-preset", o->p.model_preset, "a preset (fme init --list)");
  cmd->add_option("--model", o->p.model_dir, "or an HF checkpoint directory (each process reads only its slices)");
  cmd->add_option("--plan", o->p.plans, "plan file or builtin:bert-tp | builtin:decoder-tp | builtin:gpt2-tp (repeatable; applied in order; default with a tp mesh: the model's built-in plan)");
  cmd->add_option("--mesh", o->p.mesh, "mesh axes over the launched processes, e.g. tp=2 or dp=2,tp=2");
  cmd->add_option("--dtype", o->p.dtype, "parameter dtype before plans: fp32 | bf16");
  cmd->add_option("--seed", o->p.seed, "initialisation seed");
  cmd->add_option("--pages", o->p.pages,
                  "page size of the parameters: auto (measure on the first 64 MiB; over 1 GiB), 4k or huge")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, PageSize>{{"auto", PageSize::kProbe}, {"4k", PageSize::kSmall}, {"huge", PageSize::kHuge}}));
  cmd->add_flag_callback("--huge-pages", [o] { o->p.pages = PageSize::kHuge; }, "same as --pages huge");
  cmd->add_option("--optimizer", o->p.optimizer, "adamw | adam | sgd | none");
  cmd->add_option("--wrt", o->p.wrt, "glob patterns of the parameters to optimize (default: all trainable)");
  cmd->add_option("--lr", o->p.optim.lr, "learning rate (peak of the schedule)");
  cmd->add_option("--weight-decay", o->p.optim.weight_decay, "weight decay (default: torch's for the optimizer)");
  cmd->add_option("--beta1", o->p.optim.beta1, "Adam beta1");
  cmd->add_option("--beta2", o->p.optim.beta2, "Adam beta2");
  cmd->add_option("--eps", o->p.optim.eps, "Adam eps");
  cmd->add_option("--momentum", o->p.optim.momentum, "SGD momentum");
  cmd->add_option("--clip-norm", o->p.optim.clip_norm, "clip_by_global_norm before the update");
  cmd->add_option("--schedule", o->schedule, "constant | warmup_cosine");
  cmd->add_option("--warmup-steps", o->p.optim.schedule.warmup_steps, "warmup_cosine: warmup steps");
  cmd->add_option("--decay-steps", o->p.optim.schedule.decay_steps, "warmup_cosine: total steps (incl. warmup)");
  cmd->add_flag("--explain", o->explain, "print, per module, the matching pattern, transform, and each parameter's spec and shapes");
  cmd->add_flag("--json", o->json, "print counts, bytes and the time breakdown as one JSON line");
  cmd->add_flag("--first-step", o->first_step, "also run one optimizer step on random gradients and report its time");
  cmd->add_option("--save-gathered", o->save, "write the gathered model (HF directory) from rank 0");
  cmd->add_option("--timeout", o->timeout_s, "seconds to wait for peers");
  add_threads_option(cmd, &o->threads);
  cmd->callback([o] {
    // libtorch's thread setting is applied after make_module_opt, whose init runs its own o->threads threads:
    // at::set_num_threads starts libtorch's pthreadpool workers, which busy-wait for ~25 ms before they sleep,
    // and on 2 cores that took one from init (a 4-layer BERT's init ran ~1.3x slower).
    o->p.threads = o->threads;
    o->p.optim.schedule.kind = o->schedule;
    auto dist = start_dist(o->p.mesh, o->timeout_s);
    Prepared prep = make_module_opt(o->p, dist);
    apply_threads(o->threads);
    const bool lead = !dist || dist->rank() == 0;
    Json summary = prep.summary();
    if (!o->save.empty()) save_gathered(prep, o->save);  // before any step: the model as prepared
    if (o->first_step && prep.optimizer) {
      std::vector<at::Tensor> grads;
      for (auto& [name, p] : prep.model->named_parameters()) grads.push_back(at::randn(p.sizes()).to(p.scalar_type()) * 1e-3);
      auto t0 = std::chrono::steady_clock::now();
      prep.optimizer->step(grads);
      summary["first_step_ms"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    if (lead) {
      for (const auto& u : prep.table.unmatched) std::cerr << "fme prepare: warning: " << u << "\n";
      if (o->explain) std::cout << plans::explain_text(prep.table);
      if (o->json) std::cout << summary.dump() << std::endl;
      if (!o->explain && !o->json)
        std::cout << "prepared " << summary["global_params"] << " parameters (" << summary["local_param_bytes"]
                  << " bytes here) in " << summary["ms"]["total"] << " ms\n";
    }
  });
}

}  // namespace fme::cli
