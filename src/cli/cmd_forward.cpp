// fme forward --model DIR --inputs IN.safetensors --out OUT.safetensors [--dtype fp32|bf16] [--threads N]
#include <c10/core/ScalarType.h>

#include <iostream>

#include "cli/command.h"
#include "models/loader.h"
#include "pipelines/forward_file.h"
#include "util/error.h"

namespace fme::cli {

void add_forward(CLI::App& app) {
  struct Opts {
    std::string model, inputs, texts, out, dtype = "fp32";
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
  add_threads_option(cmd, &o->threads);
  cmd->callback([o] {
    apply_threads(o->threads);
    auto dtype = static_cast<at::ScalarType>(parse_dtype_name(o->dtype));
    auto model = load_model(o->model, dtype);
    if (o->inputs.empty() == o->texts.empty()) throw ConfigError("give one of --inputs or --texts");
    Batch batch = o->inputs.empty() ? read_text_batch(o->texts, Tokenizer::from_file(o->model), *model)
                                    : read_batch(o->inputs, *model);
    forward_to_file(*model, batch, o->out);
  });
}

}  // namespace fme::cli
