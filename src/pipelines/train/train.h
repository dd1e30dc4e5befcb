// `fme train`: the training step and loop on the module, plans and optimizer that prepare builds
// (make_module_opt). One step: the micro-batches' forward (Model::logits, autograd), each loss weighted by
// its share of the step's counted tokens so that N micro-batches equal one batch N times larger, backward,
// then the optimizer (clip and schedule included). Mixed precision: fp32 parameters and optimizer state,
// activations in the compute dtype (bf16 only where the hardware computes it fast, as extract's `auto`).
// Per step one line of RUN_DIR/metrics.jsonl and its scalars in RUN_DIR/tensorboard/ (TensorBoard event
// files); at the end RUN_DIR/final/ is an HF model directory.
//
// Dropout: the config's probabilities (--dropout auto), masks drawn per (seed, step, rank, micro-batch).
// Checkpoints every --checkpoint-every steps (train_checkpoint.h); --resume continues from the newest whole
// one after any crash and ends byte-identical to an uninterrupted run (same thread count: a reduction's order
// depends on it), metrics.jsonl cut back to that checkpoint's lines first.
// Data: one fixed batch (--inputs) used at every step, or a streamed JSONL dataset (--dataset: packed rows,
// packed_rows.h; labels and MLM masking, train_batch.h), evaluated on --eval-dataset (or a held-out
// --eval-fraction of the documents) every --eval-every steps.
// Data parallel (--mesh dp=N, launched by torchrun/mpirun/srun): every rank holds the whole model and takes its
// part of each step's rows (step_data.h); gradients are summed over the ranks in fp32 buckets, losses weighted
// by the step's counted tokens over all ranks, so dp=N equals one process with N times the accumulation. Rank
// 0 writes metrics, TensorBoard, checkpoints and final/. Tensor parallelism is not implemented yet and is
// refused by name rather than ignored.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "optim/factory.h"
#include "util/json.h"

namespace fme {

namespace dist {
class Dist;
}

struct TrainOptions {
  std::string model_dir, model_preset;  // one of them
  std::string inputs;                   // a fixed batch (fixed_batch.h), used at every step; or
  std::string dataset;                  // a JSONL dataset, streamed (packed_rows.h)
  std::string format = "auto";          // of the dataset: auto | text-jsonl | tokens-jsonl
  std::string text_field = "text";
  int64_t seq_len = 0;                  // rows of the dataset; 0: 512, or the model's positions if fewer
  bool packing = true;                  // documents laid end to end (segments), else one per row, padded
  int64_t shuffle_buffer = 10000;       // documents; 0: file order
  int64_t epochs = 0;                   // > 0: train this many passes over the dataset (instead of --steps)
  std::string eval_dataset;             // evaluated every eval_every steps and after the last
  int64_t eval_every = 0;               // 0: only after the last step
  double eval_fraction = 0;             // > 0: evaluate on this share of --dataset's documents, held out of training
  std::string out;                      // RUN_DIR: must not exist or be empty
  std::string objective = "auto";       // auto (the family's: mlm for BERT, causal otherwise) | causal | mlm
  int64_t micro_batch = 0;              // rows per micro-batch; 0: batch rows / grad_accum (a dataset: 8)
  int64_t grad_accum = 0;               // micro-batches per step; 0: from micro_batch (default 1)
  int64_t steps = 0;                    // 0: 1 (--inputs), or from --epochs (--dataset, which needs one of them)
  std::string optimizer = "adamw";
  OptimizerConfig optim;                // lr, betas, eps, weight decay, clip; the schedule from `warmup`
  int64_t warmup = 0;                   // > 0: linear warmup to lr over `warmup` steps, then cosine decay to 0
  std::string precision = "auto";       // auto | fp32 | bf16-mixed
  std::string dropout = "auto";         // auto (the config's probabilities) | 0
  uint64_t seed = 0;                    // initialisation of a preset or an added head, and dropout masks
  std::vector<std::string> plans;       // prepare's plans (LoRA, freeze, cast)
  std::string mesh;                     // "dp=N" over the launched processes (tensor parallel: not yet)
  std::string dump_grads;               // FILE.safetensors: the first step's gradients as grad.{HF name}
  int64_t checkpoint_every = 0;         // > 0: a checkpoint after every K-th step (and none otherwise)
  int64_t keep_last = 0;                // > 0: only the newest N checkpoints are kept
  bool resume = false;                  // continue the run in `out` from its newest checkpoint
  std::string save_adapters;            // DIR: the LoRA adapters in PEFT's layout (also in final/ unless merged)
  bool merge_adapters = false;          // final/ holds W + B A alpha/r and no adapters
  bool quiet = false;
  int threads = 0;
};

struct TrainSummary {
  int64_t steps = 0;
  int64_t resumed_from = -1;  // the checkpoint's step a --resume continued from (0: none was written yet)
  int64_t tokens = 0;       // real (unpadded) input tokens through the model, all steps
  int64_t loss_tokens = 0;  // positions the loss counted (labels not -100, after the causal shift)
  double first_loss = 0, last_loss = 0;
  double seconds = 0;
  std::string objective, precision, out;
  Json eval;  // the last evaluation's line (eval_loss, eval_perplexity or eval_accuracy), or null
  Json to_json() const;
};

// Throws ConfigError / ShapeError / IoError with messages naming the option, file or field.
// `dist`: the launched processes (data parallel over its "dp" axis); null for one process.
TrainSummary run_train(const TrainOptions& options, std::shared_ptr<dist::Dist> dist = nullptr);

}  // namespace fme
