// fme train (--model DIR | --model-preset NAME) (--dataset PATH | --inputs FILE.safetensors) --out RUN_DIR
//           [--objective auto|mlm|causal] [--seq-len N] [--no-packing] [--text-field F] [--shuffle-buffer N]
//           [--micro-batch B] [--grad-accum N] [--steps N | --epochs N] [--optimizer adamw|adam|sgd] [--lr X] [--betas A,B]
//           [--eps X] [--weight-decay X] [--clip-norm X] [--warmup N] [--precision auto|fp32|bf16-mixed]
//           [--dropout auto|0] [--seed S] [--plan ...] [--eval-dataset PATH --eval-every N] [--checkpoint-every K] [--keep-last N] [--resume]
//           [--dump-grads FILE] [--quiet]
// Trains on the module prepare builds; prints the summary as one JSON line.
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "dist/launch_env.h"
#include "dist/process_group.h"
#include "pipelines/train/train.h"
#include "util/error.h"

namespace fme::cli {

void add_train(CLI::App& app) {
  struct Opts {
    TrainOptions t;
    std::string betas;
    double timeout_s = 300;
    bool no_packing = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model on what prepare builds: masked-LM or next-token loss, AdamW, mixed precision");
  cmd->add_option("--model", o->t.model_dir, "an HF checkpoint directory");
  cmd->add_option("--model-preset", o->t.model_preset, "or a preset (fme init --list), initialised from --seed");
  cmd->add_option("--inputs", o->t.inputs, "one fixed batch (input_ids, attention_mask, [token_type_ids], labels; -100 = ignored), used at every step");
  cmd->add_option("--dataset", o->t.dataset, "JSONL training data, streamed: text lines (--text-field) or pre-tokenized \"input_ids\"");
  cmd->add_option("--format", o->t.format, "of --dataset: auto | text-jsonl | tokens-jsonl");
  cmd->add_option("--text-field", o->t.text_field, "the text of a --dataset line (default: text)");
  cmd->add_option("--seq-len", o->t.seq_len, "tokens per row (default: 512, or the model's positions if fewer)");
  cmd->add_flag("--no-packing", o->no_packing, "one document per row, padded (default: documents packed end to end, attending only within themselves)");
  cmd->add_option("--shuffle-buffer", o->t.shuffle_buffer, "documents in the shuffle buffer (default: 10000; 0: file order)");
  cmd->add_option("--epochs", o->t.epochs, "passes over --dataset (instead of --steps)");
  cmd->add_option("--eval-dataset", o->t.eval_dataset, "JSONL evaluated every --eval-every steps and after the last: loss, perplexity or masked accuracy");
  cmd->add_option("--eval-fraction", o->t.eval_fraction, "or evaluate on this share of --dataset's documents, held out of training (e.g. 0.05)");
  cmd->add_option("--eval-every", o->t.eval_every, "steps between evaluations (default: only after the last)");
  cmd->add_option("--out", o->t.out, "run directory (new or empty, or the run to --resume): metrics.jsonl, checkpoints/ and final/ (an HF model directory)")->required();
  cmd->add_option("--objective", o->t.objective, "auto (masked LM for BERT, next token otherwise) | causal | mlm");
  cmd->add_option("--micro-batch", o->t.micro_batch, "rows per micro-batch (default: the batch / --grad-accum)");
  cmd->add_option("--grad-accum", o->t.grad_accum, "micro-batches per step, losses weighted by counted tokens");
  cmd->add_option("--steps", o->t.steps, "optimizer steps (default with --inputs: 1)");
  cmd->add_option("--optimizer", o->t.optimizer, "adamw | adam | sgd");
  cmd->add_option("--lr", o->t.optim.lr, "learning rate (constant, or the peak after --warmup)");
  cmd->add_option("--betas", o->betas, "Adam betas, e.g. 0.9,0.999");
  cmd->add_option("--eps", o->t.optim.eps, "Adam eps");
  cmd->add_option("--weight-decay", o->t.optim.weight_decay, "weight decay (default: torch's for the optimizer: AdamW 0.01)");
  cmd->add_option("--momentum", o->t.optim.momentum, "SGD momentum");
  cmd->add_option("--clip-norm", o->t.optim.clip_norm, "clip gradients by their global norm (default: no clipping)");
  cmd->add_option("--warmup", o->t.warmup, "linear warmup steps, then cosine decay to 0 at --steps (default: constant lr)");
  cmd->add_option("--precision", o->t.precision, "auto (bf16-mixed only where the hardware computes bf16 fast) | fp32 | bf16-mixed");
  cmd->add_option("--dropout", o->t.dropout, "auto (the config's) | 0");
  cmd->add_option("--seed", o->t.seed, "seed of a preset's initialisation, of an added head and of the dropout masks");
  cmd->add_option("--plan", o->t.plans, "prepare's plans: LoRA, freeze, cast (repeatable)");
  cmd->add_option("--mesh", o->t.mesh, "dp=N, tp=N or dp=N,tp=M over the launched processes (torchrun, mpirun or srun): data parallel replicas, each a tensor-parallel group (the model's built-in plan, or --plan's colwise/rowwise rules)");
  cmd->add_option("--timeout", o->timeout_s, "seconds to wait for peers (a collective that waits longer fails)");
  cmd->add_option("--checkpoint-every", o->t.checkpoint_every, "write a checkpoint (model, optimizer state, step) every K steps into RUN_DIR/checkpoints");
  cmd->add_option("--keep-last", o->t.keep_last, "keep only the newest N checkpoints (default: all)");
  cmd->add_flag("--resume", o->t.resume, "continue the run in --out from its newest whole checkpoint (the same settings)");
  cmd->add_option("--save-adapters", o->t.save_adapters, "write the LoRA adapters in PEFT's layout (adapter_config.json, adapter_model.safetensors) to this directory");
  cmd->add_flag("--merge-adapters", o->t.merge_adapters, "fold the LoRA adapters into the base weights of final/ (W += B A alpha/r)");
  cmd->add_option("--dump-grads", o->t.dump_grads, "write the first step's gradients as grad.{HF name} to this safetensors file");
  cmd->add_flag("--quiet", o->t.quiet, "no progress output");
  add_threads_option(cmd, &o->t.threads);
  cmd->callback([o] {
    o->t.packing = !o->no_packing;
    const dist::LaunchEnv env = dist::launch_env_from_environment();
    if (o->t.mesh.empty() && env.is_distributed()) o->t.mesh = "dp=" + std::to_string(env.world_size);
    if (!o->betas.empty()) {
      std::stringstream ss(o->betas);
      char comma = 0;
      if (!(ss >> o->t.optim.beta1 >> comma >> o->t.optim.beta2) || comma != ',' || !ss.eof())
        throw ConfigError("--betas '" + o->betas + "': expected two numbers, e.g. 0.9,0.999");
    }
    apply_threads(o->t.threads);
    auto dist = start_dist(o->t.mesh, o->timeout_s);
    const TrainSummary summary = run_train(o->t, dist);
    if (!dist || dist->rank() == 0) std::cout << summary.to_json().dump() << std::endl;
  });
}

}  // namespace fme::cli
