// fme forward --model DIR --inputs IN.safetensors --out OUT.safetensors [--dtype fp32|bf16] [--threads N]
#include <c10/core/ScalarType.h>

#include <iostream>

#include "cli/command.h"
#include "models/tensor_io.h"
#include "models/loader.h"
#include "dist/process_group.h"
#include "pipelines/forward_file.h"
#include "pipelines/prepare/prepare.h"
#include "util/error.h"

namespace fme::cli {

void add_forward(CLI::App& app) {
  struct Opts {
    std::string model, inputs, texts, out, dtype = "fp32", mesh;
    std::vector<std::string> plans;
    double timeout_s = 300;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("forward", "Run a model on a batch and store every capture point");
  cmd->add_option("--model", o->model, "HF-format model directory")->required();
  auto* in = cmd->add_option("--inputs", o->inputs, "safetensors with input_ids, attention_mask [, token_type_ids] [B,T]");
  auto* texts = cmd->add_option("--texts", o->texts, "or: JSONL with a \"text\" field per line, tokenized with the model's tokenizer");
  in->excludes(texts);
  cmd->add_option("--out", o->out, "output safetensors: embeddings, resid_post.{i}, final")->required();
  cmd->add_option("--dtype", o->dtype, "compute dtype: fp32 | bf16");
  cmd->add_option("--plan", o->plans, "tensor-parallel plan (file or builtin:bert-tp | builtin:qwen2-tp), with --mesh");
  cmd->add_option("--mesh", o->mesh, "mesh over the launched processes, e.g. tp=2; rank 0 writes --out");
  cmd->add_option("--timeout", o->timeout_s, "seconds to wait for peers");
  add_threads_option(cmd, &o->threads);
  cmd->callback([o] {
    apply_threads(o->threads);
    auto dtype = parse_scalar_type(o->dtype, "--dtype", /*allow_fp16=*/false);
    std::unique_ptr<Model> model;
    std::shared_ptr<dist::Dist> dist;
    if (o->plans.empty() && o->mesh.empty()) {
      model = load_model(o->model, dtype);
    } else {  // tensor parallel: each process loads only its slices
      dist = start_dist(o->mesh, o->timeout_s);
      PrepareOptions p;
      p.model_dir = o->model;
      p.plans = o->plans;
      p.mesh = o->mesh;
      p.dtype = o->dtype;
      p.optimizer = "none";
      model = std::move(make_module_opt(p, dist).model);
    }
    if (o->inputs.empty() == o->texts.empty()) throw ConfigError("give one of --inputs or --texts");
    Batch batch = o->inputs.empty() ? read_text_batch(o->texts, Tokenizer::from_file(o->model), *model)
                                    : read_batch(o->inputs, *model);
    if (!dist || dist->rank() == 0) {
      forward_to_file(*model, batch, o->out);
    } else {
      ForwardOptions fo;  // the other ranks take part in the collectives and discard the result
      model->forward(batch, fo);
    }
  });
}

}  // namespace fme::cli
