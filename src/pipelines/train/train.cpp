#include "pipelines/train/train.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include "formats/tfevents.h"
#include "models/architecture.h"
#include "models/compute_dtype.h"
#include "models/dropout.h"
#include "models/presets.h"
#include "models/tensor_io.h"
#include "pipelines/model_dir.h"
#include "pipelines/prepare/prepare.h"
#include "pipelines/train/fixed_batch.h"
#include "pipelines/train/loss.h"
#include "pipelines/train/train_checkpoint.h"
#include "util/cpu_features.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/sha256.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Tokenizer and generation files an HF model directory may carry (and the license they come under): copied
// into final/ so it loads as the source did.
const char* const kModelSideFiles[] = {"tokenizer.json",  "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                                       "vocab.json",      "merges.txt",            "tokenizer.model",         "added_tokens.json",
                                       "generation_config.json", "LICENSE"};

// A new run needs a new or empty --out; --resume needs the run's directory.
void prepare_out(const std::string& out, bool resume) {
  if (out.empty()) throw ConfigError("fme train: --out RUN_DIR is required");
  std::error_code ec;
  if (resume) {
    if (!fs::is_directory(out, ec)) throw ConfigError(out + ": no such run directory to --resume");
    return;
  }
  if (fs::exists(out, ec) && (!fs::is_directory(out, ec) || !fs::is_empty(out, ec)))
    throw ConfigError(out + ": exists and is not empty; give a new --out, or --resume to continue the run in it");
  fs::create_directories(out, ec);
  if (ec) throw IoError(out + ": cannot create directory: " + ec.message());
}

// What a checkpoint must have been made with for a --resume to continue it: everything that changes the
// numbers (the thread count aside: byte identity needs it equal, but another machine may resume a run).
Json resume_settings(const TrainOptions& o, const std::string& objective, const std::string& precision, int64_t micro,
                     int64_t accum) {
  auto opt = [](const std::optional<double>& v) { return v ? Json(*v) : Json(); };
  return Json{{"model", o.model_dir.empty() ? Json() : Json(fs::absolute(o.model_dir).lexically_normal().string())},
              {"model_preset", o.model_preset.empty() ? Json() : Json(o.model_preset)},
              {"inputs_sha256", sha256_file(o.inputs)},
              {"objective", objective},
              {"micro_batch", micro},
              {"grad_accum", accum},
              {"optimizer", o.optimizer},
              {"lr", o.optim.lr},
              {"betas", {o.optim.beta1, o.optim.beta2}},
              {"eps", o.optim.eps},
              {"weight_decay", opt(o.optim.weight_decay)},
              {"momentum", o.optim.momentum},
              {"clip_norm", opt(o.optim.clip_norm)},
              {"warmup", o.warmup},
              {"schedule_steps", o.warmup > 0 ? Json(o.steps) : Json()},  // only warmup-cosine depends on --steps
              {"precision", precision},
              {"dropout", o.dropout},
              {"seed", o.seed},
              {"plans", o.plans}};
}

// The metrics.jsonl lines of steps 1..N a checkpoint kept: its first and last loss (the summary's).
std::pair<double, double> kept_losses(const std::string& metrics_path) {
  std::ifstream in(metrics_path);
  std::string line, first, last;
  while (std::getline(in, line))
    if (!line.empty()) (first.empty() ? first : last) = line;
  if (last.empty()) last = first;
  if (first.empty()) throw FormatError(metrics_path + ": no line for the steps the checkpoint holds");
  return {parse_json(first, metrics_path).at("loss").get<double>(), parse_json(last, metrics_path).at("loss").get<double>()};
}

// The step's micro-batches: `accum` slices of `rows` rows each.
std::pair<int64_t, int64_t> micro_batches(const TrainOptions& o, int64_t batch_rows, const std::string& path) {
  int64_t micro = o.micro_batch, accum = o.grad_accum;
  if (micro < 0 || accum < 0) throw ConfigError("--micro-batch and --grad-accum must be positive");
  if (micro == 0 && accum == 0) accum = 1;
  if (micro == 0) micro = batch_rows / accum;
  if (accum == 0) accum = batch_rows / std::max<int64_t>(micro, 1);
  if (micro <= 0 || micro * accum != batch_rows)
    throw ConfigError("--micro-batch " + std::to_string(micro) + " x --grad-accum " + std::to_string(accum) +
                      " does not split the " + std::to_string(batch_rows) + " rows of " + path + " (their product must equal the rows)");
  return {micro, accum};
}

// --dropout auto: the config's probabilities (true when any is above 0); 0: none.
bool dropout_on(const TrainOptions& o, const Model& model) {
  if (o.dropout == "0") return false;
  if (o.dropout != "auto") throw ConfigError("--dropout '" + o.dropout + "': expected auto or 0");
  for (const auto& [key, p] : model.dropout_probabilities())
    if (p > 0) return true;
  return false;
}

}  // namespace

Json TrainSummary::to_json() const {
  return Json{{"steps", steps},         {"resumed_from", resumed_from >= 0 ? Json(resumed_from) : Json()}, {"tokens", tokens},       {"loss_tokens", loss_tokens}, {"first_loss", first_loss},
              {"last_loss", last_loss}, {"seconds", seconds},     {"objective", objective},
              {"precision", precision}, {"out", out}};
}

TrainSummary run_train(const TrainOptions& o) {
  const double t_start = now();
  if (o.inputs.empty()) throw ConfigError("fme train: give --inputs FILE.safetensors (streamed --dataset training is not implemented yet)");
  if (o.steps < 1) throw ConfigError("--steps must be at least 1");
  if (o.warmup < 0 || (o.warmup > 0 && o.warmup >= o.steps))
    throw ConfigError("--warmup " + std::to_string(o.warmup) + ": must be below --steps " + std::to_string(o.steps));
  if (o.precision != "auto" && o.precision != "fp32" && o.precision != "bf16-mixed")
    throw ConfigError("--precision '" + o.precision + "': expected auto, fp32 or bf16-mixed");
  if (o.model_dir.empty() == o.model_preset.empty()) throw ConfigError("fme train: give one of --model or --model-preset");
  if (o.checkpoint_every < 0 || o.keep_last < 0) throw ConfigError("--checkpoint-every and --keep-last must be >= 0");
  if (!fs::exists(o.inputs)) throw IoError(o.inputs + ": no such file (--inputs)");
  prepare_out(o.out, o.resume);

  // The module, plans and optimizer, as prepare builds them, with the head the objective trains.
  PrepareOptions p;
  p.model_dir = o.model_dir;
  p.model_preset = o.model_preset;
  p.plans = o.plans;
  p.seed = o.seed;
  p.optimizer = o.optimizer;
  p.optim = o.optim;
  if (o.warmup > 0) {
    p.optim.schedule.kind = "warmup_cosine";
    p.optim.schedule.init_value = 0;
    p.optim.schedule.warmup_steps = o.warmup;
    p.optim.schedule.decay_steps = o.steps;
    p.optim.schedule.end_value = 0;
  }
  p.threads = o.threads;
  p.lm_head = true;
  Prepared prep = make_module_opt(p, nullptr);
  Model& model = *prep.model;
  if (!prep.optimizer) throw ConfigError("fme train: --optimizer none leaves nothing to train");

  // The objective is the one the family's head is for: a masked-LM head cannot learn next tokens, and a
  // causal model given its own inputs as labels would learn to copy them.
  const std::string family_objective = architecture_for(model.config()).training_objective;
  const Objective objective = parse_objective(o.objective == "auto" ? family_objective : o.objective);
  if (objective_name(objective) != family_objective)
    throw ConfigError("--objective " + o.objective + ": " + model.model_type() + " trains with the " + family_objective +
                      " objective (its head's); give --objective auto or " + family_objective);
  const bool use_dropout = dropout_on(o, model);
  const DtypeChoice precision =
      choose_compute_dtype(o.precision == "bf16-mixed" ? "bf16" : o.precision, cpu_features(), c10::kCPU, {}, "--precision");
  if (!precision.warning.empty() && !o.quiet) std::cerr << "fme train: warning: " << precision.warning << "\n";
  model.set_compute_dtype(precision.dtype);  // parameters stay fp32 (master weights); activations in this dtype
  const std::string precision_name = precision.dtype == at::kFloat ? "fp32" : "bf16-mixed";

  const LabeledBatch batch = read_fixed_batch(o.inputs, model);
  const auto [micro, accum] = micro_batches(o, batch.rows(), o.inputs);
  // Counted positions of the whole step: every micro-batch's loss is its sum over this, so the step's loss
  // is the mean over all of them however the batch is cut.
  const int64_t step_tokens = [&] {
    const at::Tensor l = objective == Objective::Causal ? batch.labels.narrow(1, 1, batch.labels.size(1) - 1) : batch.labels;
    return l.ne(-100).sum().item<int64_t>();
  }();
  if (step_tokens == 0) throw ShapeError(o.inputs + ": tensor 'labels' has no position that counts (all -100)");
  const int64_t step_inputs = batch.batch.attention_mask.sum().item<int64_t>();  // real tokens through the model

  std::vector<std::pair<std::string, at::Tensor>> params;  // in the optimizer's order (make_module_opt's)
  for (auto& item : model.module().named_parameters(true)) params.emplace_back(item.key(), item.value());

  NamedTensors optimizer_state = prep.optimizer->named_state();
  const Json settings = resume_settings(o, objective_name(objective), precision_name, micro, accum);

  TrainSummary sum;
  sum.objective = objective_name(objective);
  sum.precision = precision_name;
  sum.out = o.out;
  const std::string metrics_path = (fs::path(o.out) / "metrics.jsonl").string();
  int64_t first_step = 0;
  if (o.resume) {
    // The newest whole checkpoint; metrics.jsonl cut back to its steps' lines, which the steps after it
    // write again exactly as an uninterrupted run would have.
    const std::optional<TrainCheckpoint> ckpt = find_latest_checkpoint(o.out, o.quiet);
    uint64_t keep_bytes = 0;
    if (ckpt) {
      check_settings(*ckpt, settings);
      if (ckpt->step > o.steps)
        throw ConfigError(ckpt->dir + ": the run is at step " + std::to_string(ckpt->step) + ", past --steps " + std::to_string(o.steps));
      restore_train_checkpoint(*ckpt, params, optimizer_state);
      prep.optimizer->set_step_count(ckpt->step);
      first_step = ckpt->step;
      keep_bytes = ckpt->metrics_bytes;
    }
    std::error_code ec;
    const uint64_t have = fs::exists(metrics_path) ? fs::file_size(metrics_path) : 0;
    if (have < keep_bytes)
      throw FormatError(metrics_path + ": " + std::to_string(have) + " bytes, shorter than the " + std::to_string(keep_bytes) +
                        " the checkpoint at step " + std::to_string(first_step) + " recorded (lines were lost)");
    if (fs::exists(metrics_path)) fs::resize_file(metrics_path, keep_bytes, ec);
    if (ec) throw IoError(metrics_path + ": cannot truncate: " + ec.message());
    sum.resumed_from = first_step;
    if (first_step > 0) {
      std::tie(sum.first_loss, sum.last_loss) = kept_losses(metrics_path);
      sum.steps = first_step;
      sum.tokens = first_step * step_inputs;
      sum.loss_tokens = first_step * step_tokens;
    }
  }
  std::ofstream metrics(metrics_path, std::ios::app);
  if (!metrics) throw IoError(metrics_path + ": cannot open for writing");
  // TensorBoard: a new events file per start; a resumed run first tells TensorBoard to drop the steps it
  // is about to log again.
  TfEventsWriter events((fs::path(o.out) / "tensorboard").string());
  if (o.resume) events.add_restart(first_step + 1);
  Progress progress("train", o.quiet);
  double checkpoint_seconds = 0;  // the checkpoint written since the last line: reported in the next one
  for (int64_t step = first_step; step < o.steps; ++step) {
    const double t0 = now();
    const double lr = prep.optimizer->current_lr();
    for (auto& [name, t] : params) t.mutable_grad() = at::Tensor();  // set_to_none, as torch's zero_grad
    double loss_sum = 0;
    for (int64_t m = 0; m < accum; ++m) {
      const LabeledBatch mb = batch.slice(m * micro, micro);
      // Masks drawn from (seed, step, rank, micro-batch): a step is reproducible on its own.
      std::optional<DropoutScope> scope;
      if (use_dropout) scope.emplace(o.seed, step, /*rank=*/0, m);
      const at::Tensor logits = model.logits(mb.batch);  // [b,T,V]
      const LossSum ls = cross_entropy_sum(logits, mb.labels, objective);
      loss_sum += ls.sum.item<double>();
      (ls.sum / static_cast<double>(step_tokens)).backward();
    }
    const double t1 = now();
    std::vector<at::Tensor> grads;
    double sq = 0;
    for (auto& [name, t] : params) {
      grads.push_back(t.grad());
      if (!t.grad().defined()) continue;
      const double n = t.grad().norm().item<double>();  // per tensor in its own dtype; the squares summed in fp64
      sq += n * n;
    }
    const double loss = loss_sum / static_cast<double>(step_tokens);
    // Before the update: a non-finite loss or gradient must not reach the weights (or a checkpoint).
    if (!std::isfinite(loss) || !std::isfinite(sq))
      throw Error("fme train: step " + std::to_string(step + 1) + ": the " + (std::isfinite(loss) ? "gradient norm" : "loss") +
                  " is " + std::to_string(std::isfinite(loss) ? std::sqrt(sq) : loss) +
                  "; the weights were not updated, and the last checkpoint is intact");
    if (step == 0 && !o.dump_grads.empty()) {
      std::vector<std::pair<std::string, at::Tensor>> named;
      for (auto& [name, t] : params)
        if (t.grad().defined()) named.emplace_back("grad." + model.checkpoint_name(name), t.grad());
      write_safetensors(o.dump_grads, named, {{"format", "pt"}});
    }
    {
      at::NoGradGuard no_grad;
      prep.optimizer->step(grads);
    }
    const double t2 = now();
    if (step == 0) sum.first_loss = loss;
    sum.last_loss = loss;
    sum.steps = step + 1;
    sum.tokens += step_inputs;
    sum.loss_tokens += step_tokens;
    Json line{{"step", step + 1},
              {"loss", loss},
              {"lr", lr},
              {"grad_norm", std::sqrt(sq)},
              {"tokens", sum.tokens},
              {"loss_tokens", sum.loss_tokens},
              {"tokens_per_s", static_cast<double>(step_inputs) / (t2 - t0)},
              {"seconds", {{"data", 0.0}, {"forward_backward", t1 - t0}, {"optimizer", t2 - t1}, {"communication", 0.0}, {"checkpoint", checkpoint_seconds}}}};
    metrics << line.dump() << "\n" << std::flush;
    if (!metrics) throw IoError(metrics_path + ": write failed");
    for (const char* key : {"loss", "lr", "grad_norm", "tokens_per_s"})
      events.add_scalar(std::string("train/") + key, step + 1, line.at(key).get<double>());
    events.flush();
    checkpoint_seconds = 0;
    if (o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0) {
      const double tc = now();
      save_train_checkpoint(o.out, step + 1, static_cast<uint64_t>(fs::file_size(metrics_path)), settings,
                            Json{{"kind", "fixed_batch"}, {"steps_done", step + 1}}, params, optimizer_state, o.keep_last);
      checkpoint_seconds = now() - tc;
    }
    ProgressStats ps;
    ps.samples = step + 1;
    ps.total_samples = o.steps;
    ps.tokens = sum.tokens;
    ps.unit = "steps";
    char detail[64];
    std::snprintf(detail, sizeof detail, "loss %.4f", loss);
    ps.detail = detail;
    if (step + 1 < o.steps) progress.update(ps);
    else progress.finish(ps);
  }

  // final/: written beside, then renamed into place, so a final/ directory is always complete.
  const fs::path final_dir = fs::path(o.out) / "final", tmp_dir = fs::path(o.out) / "final.tmp";
  fs::remove_all(tmp_dir);
  write_model_dir(model, tmp_dir.string(), at::kFloat, o.model_dir.empty() ? find_preset(o.model_preset).tokenizer : "");
  if (!o.model_dir.empty())
    for (const char* f : kModelSideFiles)
      if (fs::exists(fs::path(o.model_dir) / f)) fs::copy_file(fs::path(o.model_dir) / f, tmp_dir / f);
  fs::remove_all(final_dir);  // a resumed run that had finished before writes it again, the same
  fs::rename(tmp_dir, final_dir);
  sum.seconds = now() - t_start;
  return sum;
}

}  // namespace fme
