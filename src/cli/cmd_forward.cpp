// fme forward --model DIR --inputs IN.safetensors --out OUT.safetensors [--dtype auto|fp32|bf16] [--weights-dtype ..]
#include <ATen/ATen.h>
#include <c10/core/ScalarType.h>

#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "models/compute_dtype.h"
#include "models/tensor_io.h"
#include "models/loader.h"
#include "dist/process_group.h"
#include "pipelines/forward_file.h"
#include "pipelines/prepare/prepare.h"
#include "util/error.h"

namespace fme::cli {

void add_forward(CLI::App& app) {
  struct Opts {
    std::string model, inputs, texts, out, dtype = "auto", weights_dtype, mesh, hooks;
    std::vector<std::string> plans;
    double timeout_s = 300;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("forward", "Run a model on a batch and store its hook points");
  cmd->add_option("--model", o->model, "HF-format model directory")->required();
  auto* in = cmd->add_option("--inputs", o->inputs, "safetensors with input_ids, attention_mask [, token_type_ids] [B,T]");
  auto* texts = cmd->add_option("--texts", o->texts, "or: JSONL with a \"text\" field per line, tokenized with the model's tokenizer");
  in->excludes(texts);
  cmd->add_option("--out", o->out, "output safetensors: every hook point (blocks.{i}.hook_resid_post, ...) as float32")->required();
  cmd->add_option("--hooks", o->hooks, "only these hook points: 'blocks.{0..3}.hook_resid_post,*.mlp.hook_post' (lists, {a..b}, globs)");
  cmd->add_option("--dtype", o->dtype, "compute dtype: auto | fp32 | bf16 (auto: bf16 only where this hardware is fast at it)");
  cmd->add_option("--weights-dtype", o->weights_dtype, "dtype the weights are kept in: fp32 | bf16 (default: the compute dtype)");
  cmd->add_option("--plan", o->plans, "tensor-parallel plan (file or builtin:bert-tp | builtin:decoder-tp | builtin:gpt2-tp; default: the model's built-in plan), with --mesh");
  cmd->add_option("--mesh", o->mesh, "mesh over the launched processes, e.g. tp=2; rank 0 writes --out");
  cmd->add_option("--timeout", o->timeout_s, "seconds to wait for peers");
  add_threads_option(cmd, &o->threads);
  cmd->callback([o] {
    apply_threads(o->threads);
    const bool parallel = !(o->plans.empty() && o->mesh.empty());
    std::shared_ptr<dist::Dist> dist = parallel ? start_dist(o->mesh, o->timeout_s) : nullptr;
    DtypeChoice choice = choose_compute_dtype(o->dtype, cpu_features());
    if (dist && dist->world() > 1) {  // every rank computes in rank 0's choice (probes may differ by noise)
      at::Tensor code = at::full({1}, choice.dtype == at::kBFloat16 ? 1 : 0, at::kInt);
      dist->broadcast(code, 0);
      const at::ScalarType agreed = code.item<int>() == 1 ? at::kBFloat16 : at::kFloat;
      if (agreed != choice.dtype) choice.reason = "rank 0's choice";
      choice.dtype = agreed;
    }
    const at::ScalarType weights =
        o->weights_dtype.empty() ? choice.dtype : parse_scalar_type(o->weights_dtype, "--weights-dtype", false);
    if (!choice.warning.empty()) std::fprintf(stderr, "fme forward: warning: %s\n", choice.warning.c_str());
    std::unique_ptr<Model> model;
    if (!parallel) {
      model = load_model(o->model, choice.dtype, weights);
    } else {  // tensor parallel: each process loads only its slices
      PrepareOptions p;
      p.model_dir = o->model;
      p.plans = o->plans;
      p.mesh = o->mesh;
      p.dtype = dtype_short_name(weights);
      p.optimizer = "none";
      model = std::move(make_module_opt(p, dist).model);
      model->set_compute_dtype(choice.dtype);
    }
    if (o->inputs.empty() == o->texts.empty()) throw ConfigError("give one of --inputs or --texts");
    Batch batch = o->inputs.empty() ? read_text_batch(o->texts, Tokenizer::from_file(o->model), *model)
                                    : read_batch(o->inputs, *model);
    const std::vector<std::string> hooks = forward_hooks(*model, o->hooks);
    if (!dist || dist->rank() == 0) {
      // The choice and why go in the output's header (stderr stays for errors and warnings).
      forward_to_file(*model, batch, hooks, o->out,
                      {{"compute_dtype", dtype_short_name(choice.dtype)}, {"compute_dtype_reason", choice.reason},
                       {"weights_dtype", dtype_short_name(weights)}});
    } else {
      // The other ranks take part in the collectives (the same points, so the same gathers) and discard them.
      model->forward(batch, Capture(model->hook_points(), hooks, [](const std::string&, const at::Tensor&) {}));
    }
  });
}

}  // namespace fme::cli
