#include "pipelines/train/train.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "dist/process_group.h"
#include "formats/tfevents.h"
#include "models/architecture.h"
#include "models/compute_copies.h"
#include "models/compute_dtype.h"
#include "models/dropout.h"
#include "models/presets.h"
#include "models/tensor_io.h"
#include "optim/sum_squares.h"
#include "pipelines/model_dir.h"
#include "pipelines/prepare/prepare.h"
#include "pipelines/train/fixed_batch.h"
#include "pipelines/train/lora_adapters.h"
#include "pipelines/train/loss.h"
#include "pipelines/train/packed_rows.h"
#include "pipelines/train/step_data.h"
#include "pipelines/train/train_batch.h"
#include "pipelines/train/train_checkpoint.h"
#include "tokenizer/tokenizer.h"
#include "util/compress.h"
#include "util/cpu_features.h"
#include "util/file.h"
#include "util/error.h"
#include "util/failpoint.h"
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
                     int64_t accum, int64_t steps, int64_t seq_len) {
  auto opt = [](const std::optional<double>& v) { return v ? Json(*v) : Json(); };
  auto file = [](const std::string& path) {  // a dataset by place and size (hashing gigabytes per resume: no)
    return path.empty() ? Json() : Json{{"path", fs::absolute(path).lexically_normal().string()}, {"bytes", fs::file_size(path)}};
  };
  return Json{{"model", o.model_dir.empty() ? Json() : Json(fs::absolute(o.model_dir).lexically_normal().string())},
              {"model_preset", o.model_preset.empty() ? Json() : Json(o.model_preset)},
              {"inputs_sha256", o.inputs.empty() ? Json() : Json(sha256_file(o.inputs))},
              {"dataset", file(o.dataset)},
              {"data", o.dataset.empty() ? Json() : Json{{"format", o.format}, {"text_field", o.text_field}, {"seq_len", seq_len},
                                                         {"packing", o.packing}, {"shuffle_buffer", o.shuffle_buffer}}},
              {"eval_dataset", file(o.eval_dataset)},
              {"eval_every", o.eval_every},
              {"eval_fraction", o.eval_fraction},
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
              {"schedule_steps", o.warmup > 0 ? Json(steps) : Json()},  // only warmup-cosine depends on --steps
              {"precision", precision},
              {"dropout", o.dropout},
              {"seed", o.seed},
              {"plans", o.plans}};
}

// What the metrics.jsonl lines of steps 1..N a checkpoint kept say: the summary's first and last loss and
// token counts so far (eval lines, which carry no "loss", are passed over).
struct KeptMetrics {
  double first_loss = 0, last_loss = 0;
  int64_t tokens = 0, loss_tokens = 0;
};
KeptMetrics kept_metrics(const std::string& metrics_path) {
  std::ifstream in(metrics_path);
  KeptMetrics k;
  bool any = false;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const Json j = parse_json(line, metrics_path);
    if (!j.contains("loss")) continue;
    if (!any) k.first_loss = j.at("loss").get<double>();
    any = true;
    k.last_loss = j.at("loss").get<double>();
    k.tokens = j.at("tokens").get<int64_t>();
    k.loss_tokens = j.at("loss_tokens").get<int64_t>();
  }
  if (!any) throw FormatError(metrics_path + ": no line for the steps the checkpoint holds");
  return k;
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

// The model's tokenizer: its directory's tokenizer.json, or the one a preset ships with.
std::unique_ptr<Tokenizer> load_tokenizer(const TrainOptions& o) {
  if (!o.model_dir.empty()) {
    if (!fs::exists(fs::path(o.model_dir) / "tokenizer.json")) return nullptr;
    return std::make_unique<Tokenizer>(Tokenizer::from_file(o.model_dir));
  }
  const std::string name = find_preset(o.model_preset).tokenizer;
  const fs::path dir = fs::path(assets_dir()) / "tokenizers" / name;
  if (name.empty()) return nullptr;
  if (fs::exists(dir / "tokenizer.json")) return std::make_unique<Tokenizer>(Tokenizer::from_file((dir / "tokenizer.json").string()));
  const std::string z = (dir / "tokenizer.json.zst").string();
  return std::make_unique<Tokenizer>(Tokenizer::from_json(zstd_decompress(read_file(z), z), z));
}

// What a document ends with before the next is packed after it: EOS for decoders (config.json's
// eos_token_id, else the tokenizer's), nothing for BERT (its encoding ends with [SEP] already).
int32_t document_separator(const Model& model, const Tokenizer* tok, Objective objective) {
  if (objective == Objective::MaskedLM) return -1;
  const Json cfg = to_json(model.config());
  const Json eos = cfg.contains("eos_token_id") ? cfg.at("eos_token_id") : Json();
  if (eos.is_number_integer()) return eos.get<int32_t>();
  if (eos.is_array() && !eos.empty() && eos[0].is_number_integer()) return eos[0].get<int32_t>();
  for (const char* t : {"<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>"})
    if (tok && tok->token_to_id(t) >= 0) return tok->token_to_id(t);
  return -1;
}

// Sums `values` over the data-parallel replicas (a tensor-parallel group computes them once, together).
std::vector<double> sum_over_replicas(dist::Dist* d, std::vector<double> values) {
  if (!d || d->size("dp") == 1) return values;
  at::Tensor t = at::tensor(values, at::kDouble);
  d->all_reduce_sum(t, "dp");
  for (size_t i = 0; i < values.size(); ++i) values[i] = t[static_cast<int64_t>(i)].item<double>();
  return values;
}

double sum_over_world(dist::Dist& d, double x) {
  at::Tensor t = at::full({1}, x, at::kDouble);
  d.all_reduce_sum(t);
  return t.item<double>();
}

// Data parallel: every defined gradient summed over the dp replicas, in fp32 buckets of ~64 MB (few
// collectives, and bf16 gradients summed in fp32 before they are rounded back). The replicas hold the same
// defined gradients (of the same shards, under tensor parallelism).
void all_reduce_gradients(dist::Dist& d, const NamedTensors& params) {
  constexpr int64_t kBucket = int64_t(16) << 20;  // elements
  std::vector<at::Tensor> bucket;
  int64_t n = 0;
  auto flush = [&] {
    if (bucket.empty()) return;
    std::vector<at::Tensor> flat;
    for (const at::Tensor& g : bucket) flat.push_back(g.reshape({-1}).to(at::kFloat));
    at::Tensor all = at::cat(flat);
    d.all_reduce_sum(all, "dp");
    int64_t at = 0;
    for (const at::Tensor& g : bucket) {
      g.copy_(all.narrow(0, at, g.numel()).view(g.sizes()));
      at += g.numel();
    }
    bucket.clear();
    n = 0;
  };
  for (const auto& [name, p] : params) {
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    bucket.push_back(g);
    n += g.numel();
    if (n >= kBucket) flush();
  }
  flush();
}

// The gradient each compute copy collected (models/compute_copies.h) joins its master's: added into the
// master's fp32 gradient where that exists (a tied embedding's lookup, earlier micro-batches) or where more is
// still to be added to it (`keep` false: micro-batches to come, the data-parallel sum), so sums are in fp32 as
// with a cast per use; otherwise it stays on the copy, and the optimizer takes it as it is (widened exactly).
void fold_copy_gradients(std::vector<std::pair<std::string, at::Tensor>>& params, const std::vector<at::Tensor>& copy_of, bool keep) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < copy_of.size(); ++i) {
    const at::Tensor& c = copy_of[i];
    if (!c.defined() || !c.grad().defined()) continue;
    at::Tensor& g = params[i].second.mutable_grad();
    if (g.defined()) add_copy_gradient(g, c.grad());
    else if (!keep) g = c.grad().to(at::kFloat);
    else continue;
    c.mutable_grad() = at::Tensor();
  }
}

// Mean loss over every counted position of the eval rows (and for MLM the share of masked tokens predicted
// right), with the masks of step -1: the same draws at every evaluation. `rows`: the eval set's, read once.
Json evaluate(Model& model, const std::vector<PackedRow>& rows, int64_t micro, Objective objective, const MlmMasking* mlm,
              uint64_t seed, bool token_types, dist::Dist* d) {
  const int rank = d ? d->rank("dp") : 0, world = d ? d->size("dp") : 1;  // micro-batch k is replica k % world's
  at::NoGradGuard no_grad;
  double loss_sum = 0;
  int64_t count = 0, correct = 0;
  const size_t n = static_cast<size_t>(micro);
  for (size_t at = 0, k = 0; at < rows.size(); at += n, ++k) {
    if (static_cast<int>(k % static_cast<size_t>(world)) != rank) continue;
    const std::vector<PackedRow> batch(rows.begin() + static_cast<std::ptrdiff_t>(at),
                                       rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), at + n)));
    const LabeledBatch b = make_train_batch(batch, objective, mlm, seed, -1, token_types);
    const at::Tensor logits = model.logits(b.batch);
    const LossSum ls = cross_entropy_sum(logits, b.labels, objective);
    loss_sum += ls.sum.item<double>();
    count += ls.tokens;
    if (objective == Objective::MaskedLM) {
      const at::Tensor counted = b.labels.ne(-100);
      correct += logits.argmax(-1).eq(b.labels).logical_and(counted).sum().item<int64_t>();
    }
  }
  const auto all = sum_over_replicas(d, {loss_sum, double(count), double(correct)});
  loss_sum = all[0], count = static_cast<int64_t>(all[1]), correct = static_cast<int64_t>(all[2]);
  if (count == 0) throw FormatError("--eval-dataset: no position to evaluate (no token, or none masked)");
  const double loss = loss_sum / static_cast<double>(count);
  Json out{{"eval_loss", loss}, {"eval_tokens", count}};
  if (objective == Objective::Causal) out["eval_perplexity"] = std::exp(loss);
  else out["eval_accuracy"] = static_cast<double>(correct) / static_cast<double>(count);
  return out;
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
  Json j{{"steps", steps},         {"resumed_from", resumed_from >= 0 ? Json(resumed_from) : Json()},
         {"tokens", tokens},       {"loss_tokens", loss_tokens},
         {"first_loss", first_loss}, {"last_loss", last_loss},
         {"seconds", seconds},     {"objective", objective},
         {"precision", precision}, {"out", out}};
  if (!eval.is_null()) j["eval"] = eval;
  return j;
}

TrainSummary run_train(const TrainOptions& o, std::shared_ptr<dist::Dist> dist) {
  const double t_start = now();
  const int rank = dist ? dist->rank() : 0, world = dist ? dist->world() : 1;
  const bool lead = rank == 0;  // writes everything the run leaves
  // The mesh: dp replicas, each a tp group holding one copy of the model in shards. The data is cut over the
  // replicas; a tp group reads the same rows, computes one loss, and each member its shards' gradients.
  const int dp = dist ? dist->size("dp") : 1, tp = dist ? dist->size("tp") : 1;
  const int replica = dist ? dist->rank("dp") : 0;
  if (dp * tp != world)
    throw ConfigError("fme train: --mesh " + o.mesh + ": training runs over a dp and a tp axis (dp=N, tp=N or dp=N,tp=M), "
                      "whose sizes must multiply to the " + std::to_string(world) + " processes");
  if (o.inputs.empty() == o.dataset.empty())
    throw ConfigError("fme train: give one of --inputs FILE.safetensors (a fixed batch) or --dataset FILE.jsonl");
  if (o.steps < 0 || o.epochs < 0) throw ConfigError("--steps and --epochs must be positive");
  if (o.steps > 0 && o.epochs > 0) throw ConfigError("fme train: give --steps or --epochs, not both");
  if (o.epochs > 0 && o.dataset.empty()) throw ConfigError("--epochs needs a --dataset (a fixed --inputs batch has no epochs)");
  if (!o.dataset.empty() && o.steps == 0 && o.epochs == 0) throw ConfigError("fme train --dataset: give --steps or --epochs");
  if (o.precision != "auto" && o.precision != "fp32" && o.precision != "bf16-mixed")
    throw ConfigError("--precision '" + o.precision + "': expected auto, fp32 or bf16-mixed");
  if (o.model_dir.empty() == o.model_preset.empty()) throw ConfigError("fme train: give one of --model or --model-preset");
  if (o.checkpoint_every < 0 || o.keep_last < 0 || o.eval_every < 0)
    throw ConfigError("--checkpoint-every, --keep-last and --eval-every must be >= 0");
  if (o.eval_fraction != 0 && (o.dataset.empty() || !o.eval_dataset.empty()))
    throw ConfigError("--eval-fraction holds out part of a --dataset: give it with --dataset and without --eval-dataset");
  if (o.eval_every > 0 && o.eval_dataset.empty() && o.eval_fraction == 0)
    throw ConfigError("--eval-every needs an --eval-dataset or an --eval-fraction");
  if (o.seq_len < 0) throw ConfigError("--seq-len must be positive");
  for (const auto& [path, flag] : {std::pair{o.inputs, "--inputs"}, {o.dataset, "--dataset"}, {o.eval_dataset, "--eval-dataset"}})
    if (!path.empty() && !fs::exists(path)) throw IoError(path + ": no such file (" + flag + ")");
  if (lead) prepare_out(o.out, o.resume);
  if (dist) dist->barrier();

  // The model alone first (the objective, the tokenizer and the data's size decide the schedule's length).
  std::unique_ptr<Tokenizer> tokenizer = o.dataset.empty() ? nullptr : load_tokenizer(o);
  int64_t steps = o.steps > 0 ? o.steps : 1;

  // The module, plans and optimizer, as prepare builds them, with the head the objective trains.
  PrepareOptions p;
  p.model_dir = o.model_dir;
  p.model_preset = o.model_preset;
  p.plans = o.plans;
  p.seed = o.seed;
  p.optimizer = o.optimizer;
  p.optim = o.optim;
  p.threads = o.threads;
  p.mesh = o.mesh;
  p.lm_head = true;
  p.lora_trains_only_adapters = true;
  Prepared prep = make_module_opt(p, dist);
  Model& model = *prep.model;
  if (!prep.optimizer) throw ConfigError("fme train: --optimizer none leaves nothing to train");
  const bool lora = count_lora_modules(model) > 0;
  if ((o.merge_adapters || !o.save_adapters.empty()) && !lora)
    throw ConfigError(std::string(o.merge_adapters ? "--merge-adapters" : "--save-adapters") +
                      ": the model has no LoRA adapters (add a lora(r=, alpha=) rule with --plan)");

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
  const bool token_types = model.token_types() > 0;

  // The data: one fixed batch, or the dataset's packed rows.
  std::optional<StepData> data;
  std::optional<std::vector<PackedRow>> eval_rows;  // read once: every evaluation uses the same rows
  std::optional<MlmMasking> mlm;
  int64_t micro = 0, accum = 0, seq_len = 0;
  if (!o.inputs.empty()) {
    LabeledBatch batch = read_fixed_batch(o.inputs, model);
    if (batch.rows() % dp != 0)
      throw ConfigError(o.inputs + ": " + std::to_string(batch.rows()) + " rows do not split over --mesh dp=" + std::to_string(dp));
    std::tie(micro, accum) = micro_batches(o, batch.rows() / dp, o.inputs);
    // A step's loss is the mean over all its counted positions however the batch is cut.
    const at::Tensor l = objective == Objective::Causal ? batch.labels.narrow(1, 1, batch.labels.size(1) - 1) : batch.labels;
    if (l.ne(-100).sum().item<int64_t>() == 0) throw ShapeError(o.inputs + ": tensor 'labels' has no position that counts (all -100)");
    data.emplace(std::move(batch), micro, accum, replica, dp);
  } else {
    if (!tokenizer && PackedRows::needs_tokenizer(o.dataset, o.format, o.text_field))
      throw ConfigError((o.model_dir.empty() ? o.model_preset : o.model_dir) + ": no tokenizer.json, needed to tokenize " + o.dataset);
    micro = o.micro_batch > 0 ? o.micro_batch : 8;
    accum = o.grad_accum > 0 ? o.grad_accum : 1;
    if (o.micro_batch < 0 || o.grad_accum < 0) throw ConfigError("--micro-batch and --grad-accum must be positive");
    seq_len = o.seq_len > 0 ? o.seq_len : (model.max_positions() > 0 ? std::min<int64_t>(512, model.max_positions()) : 512);
    if (model.max_positions() > 0 && seq_len > model.max_positions())
      throw ConfigError("--seq-len " + std::to_string(seq_len) + ": " + model.model_type() + " takes at most " +
                        std::to_string(model.max_positions()) + " positions");
    if (objective == Objective::MaskedLM) {
      MlmMasking m;
      m.mask_id = tokenizer ? tokenizer->token_to_id("[MASK]") : -1;
      if (m.mask_id < 0) throw ConfigError(o.dataset + ": masked-LM training needs the tokenizer's [MASK] token, and it has none");
      m.vocab_size = model.vocab_size();
      for (int32_t id : tokenizer->special_ids()) m.special.insert(id);
      mlm = m;
    }
    PackedRowsOptions ro;
    ro.path = o.dataset;
    ro.format = o.format;
    ro.text_field = o.text_field;
    ro.seq_len = seq_len;
    ro.packing = o.packing;
    ro.shuffle_buffer = o.shuffle_buffer;
    ro.seed = o.seed;
    ro.separator = document_separator(model, tokenizer.get(), objective);
    ro.holdout_fraction = o.eval_fraction;
    auto rows = std::make_unique<PackedRows>(ro, tokenizer.get(), model.vocab_size());
    if (o.epochs > 0) {
      const int64_t per_epoch = rows_per_epoch(*rows);
      steps = (o.epochs * per_epoch + dp * micro * accum - 1) / (dp * micro * accum);
    }
    data.emplace(std::move(rows), micro, accum, objective, mlm, o.seed, token_types, replica, dp);
    if (!o.eval_dataset.empty() || o.eval_fraction > 0) {
      if (!o.eval_dataset.empty()) ro.path = o.eval_dataset, ro.holdout_fraction = 0;
      ro.holdout = o.eval_fraction > 0;
      ro.shuffle_buffer = 0;
      PackedRows source(ro, tokenizer.get(), model.vocab_size());
      eval_rows.emplace();
      for (PackedRow r; source.next(r);) eval_rows->push_back(std::move(r));
    }
  }
  if (o.warmup < 0 || (o.warmup > 0 && o.warmup >= steps))
    throw ConfigError("--warmup " + std::to_string(o.warmup) + ": must be below the run's " + std::to_string(steps) + " steps");
  if (o.warmup > 0) {  // the schedule, now that the run's length is known
    OptimizerConfig c = o.optim;
    c.schedule.kind = "warmup_cosine";
    c.schedule.init_value = 0;
    c.schedule.warmup_steps = o.warmup;
    c.schedule.decay_steps = steps;
    c.schedule.end_value = 0;
    prep.optimizer->set_schedule(make_schedule(c));
  }

  std::vector<std::pair<std::string, at::Tensor>> params;  // in the optimizer's order (make_module_opt's)
  for (auto& item : model.module().named_parameters(true)) params.emplace_back(item.key(), item.value());

  // Mixed precision: the bf16 copies the forward pass computes with, kept in step by the optimizer.
  std::optional<ComputeCopies> copies;
  std::vector<at::Tensor> masters, copy_of;  // per parameter: the tensor, and its compute copy (or undefined)
  size_t copies_known = 0;                    // copy_of's defined entries
  for (const auto& [name, t] : params) masters.push_back(t);
  if (precision.dtype != at::kFloat) {
    copies.emplace(precision.dtype);
    copies->add(masters);
  }

  NamedTensors optimizer_state = prep.optimizer->named_state();
  std::vector<int64_t> holders_of;  // per parameter: the processes holding the same local tensor
  for (const auto& [name, t] : params) holders_of.push_back(holders(prep.table, name, world));
  Json settings = resume_settings(o, objective_name(objective), precision_name, micro, accum, steps, seq_len);
  settings["mesh"] = Json{{"dp", dp}, {"tp", tp}};
  const Json mesh_record{{"world_size", world}, {"dp", dp}, {"tp", tp}};
  // Checkpoint files: the replica of dp coordinate 0 writes them, one pair per tp rank; its dp peers read
  // those of their tp rank.
  const std::vector<int> writers = dist ? dist->mesh().group_ranks(0, "tp") : std::vector<int>{0};
  const int checkpoint_source = dist ? dist->group_ranks("dp").front() : 0;

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
      if (ckpt->step > steps)
        throw ConfigError(ckpt->dir + ": the run is at step " + std::to_string(ckpt->step) + ", past its " + std::to_string(steps) + " steps");
      restore_train_checkpoint(*ckpt, checkpoint_source, params, optimizer_state);
      prep.optimizer->set_step_count(ckpt->step);
      first_step = ckpt->step;
      keep_bytes = ckpt->metrics_bytes;
      data->skip_steps(first_step);
    }
    std::error_code ec;
    const uint64_t have = fs::exists(metrics_path) ? fs::file_size(metrics_path) : 0;
    if (have < keep_bytes)
      throw FormatError(metrics_path + ": " + std::to_string(have) + " bytes, shorter than the " + std::to_string(keep_bytes) +
                        " the checkpoint at step " + std::to_string(first_step) + " recorded (lines were lost)");
    if (lead && fs::exists(metrics_path)) fs::resize_file(metrics_path, keep_bytes, ec);
    if (ec) throw IoError(metrics_path + ": cannot truncate: " + ec.message());
    if (dist) dist->barrier();  // every rank has read the checkpoint before the lead may replace it
    sum.resumed_from = first_step;
    if (first_step > 0) {
      const KeptMetrics kept = kept_metrics(metrics_path);
      sum.first_loss = kept.first_loss;
      sum.last_loss = kept.last_loss;
      sum.tokens = kept.tokens;
      sum.loss_tokens = kept.loss_tokens;
      sum.steps = first_step;
    }
  }
  std::ofstream metrics;
  std::optional<TfEventsWriter> events;
  if (lead) {
    metrics.open(metrics_path, std::ios::app);
    if (!metrics) throw IoError(metrics_path + ": cannot open for writing");
    // TensorBoard: a new events file per start; a resumed run first tells TensorBoard to drop the steps it
    // is about to log again.
    events.emplace((fs::path(o.out) / "tensorboard").string());
    if (o.resume) events->add_restart(first_step + 1);
  }
  auto log = [&](const Json& line, const char* group, std::initializer_list<const char*> keys, int64_t step) {
    if (!lead) return;
    metrics << line.dump() << "\n" << std::flush;
    if (!metrics) throw IoError(metrics_path + ": write failed");
    for (const char* key : keys)
      if (line.contains(key)) events->add_scalar(std::string(group) + "/" + key, step, line.at(key).get<double>());
    events->flush();
  };
  Progress progress("train", o.quiet || !lead);
  double checkpoint_seconds = 0;  // the checkpoint written since the last line: reported in the next one
  int64_t at_step = first_step;  // for the message of a peer that fails
  try {
    for (int64_t step = first_step; step < steps; ++step) {
      at_step = step + 1;
      failpoint("train.step");
      const double t0 = now();
      const double lr = prep.optimizer->current_lr();
      const std::vector<LabeledBatch> micro_batches = data->next_step(step);
      // Counted positions of the whole step: every micro-batch's loss is its sum over this, so the step's
      // loss is the mean over all of them however the step is cut into micro-batches.
      int64_t step_tokens = 0, step_inputs = 0;
      for (const LabeledBatch& mb : micro_batches) {
        const at::Tensor l = objective == Objective::Causal ? mb.labels.narrow(1, 1, mb.labels.size(1) - 1) : mb.labels;
        step_tokens += l.ne(-100).sum().item<int64_t>();
        step_inputs += mb.batch.attention_mask.sum().item<int64_t>();  // real tokens through the model
      }
      if (dp > 1) {  // the whole step's counts, over every replica
        const auto all = sum_over_replicas(dist.get(), {double(step_tokens), double(step_inputs)});
        step_tokens = static_cast<int64_t>(all[0]), step_inputs = static_cast<int64_t>(all[1]);
      }
      const double t_data = now();
      for (auto& [name, t] : params) t.mutable_grad() = at::Tensor();  // set_to_none, as torch's zero_grad
      for (at::Tensor& c : copy_of)
        if (c.defined()) c.mutable_grad() = at::Tensor();
      double loss_sum = 0;
      for (size_t m = 0; m < micro_batches.size() && step_tokens > 0; ++m) {
        // Masks drawn from (seed, step, replica, micro-batch): a step is reproducible on its own, and a tp
        // group draws the same masks for what its members hold whole.
        std::optional<DropoutScope> scope;
        if (use_dropout) scope.emplace(o.seed, step, replica, static_cast<int64_t>(m));
        const ComputeCopyScope compute_with(copies ? &*copies : nullptr);
        const at::Tensor logits = model.logits(micro_batches[m].batch);  // [b,T,V]
        const LossSum ls = cross_entropy_sum(logits, micro_batches[m].labels, objective);
        loss_sum += ls.sum.item<double>();
        (ls.sum / static_cast<double>(step_tokens)).backward();
        if (copies && copies->made() != copies_known) {  // the first pass made them
          copy_of = copies->copies_of(masters);
          copies_known = copies->made();
          prep.optimizer->set_compute_copies(copy_of);
        }
        if (copies) fold_copy_gradients(params, copy_of, m + 1 == micro_batches.size() && dp == 1);
      }
      const double t1 = now();
      if (dp > 1) {
        all_reduce_gradients(*dist, params);
        loss_sum = sum_over_replicas(dist.get(), {loss_sum})[0];
      }
      const double t_comm = now();
      std::vector<at::Tensor> grads;
      double sq = 0;
      for (size_t i = 0; i < params.size(); ++i) {
        const at::Tensor& master = params[i].second.grad();
        const at::Tensor& g = master.defined() || copy_of.empty() || !copy_of[i].defined() ? master : copy_of[i].grad();
        grads.push_back(g);
        if (!g.defined()) continue;
        sq += sum_of_squares(g) / static_cast<double>(holders_of[i]);  // each distinct shard counted once over the world
      }
      if (world > 1) sq = sum_over_world(*dist, sq);  // every rank: the same norm, the same verdict below
      // A step with nothing to predict (an MLM draw that chose no token) changes nothing; its loss reads 0.
      const double loss = step_tokens > 0 ? loss_sum / static_cast<double>(step_tokens) : 0.0;
      // Before the update: a non-finite loss or gradient must not reach the weights (or a checkpoint).
      if (!std::isfinite(loss) || !std::isfinite(sq))
        throw Error("fme train: step " + std::to_string(step + 1) + ": the " + (std::isfinite(loss) ? "gradient norm" : "loss") +
                    " is " + std::to_string(std::isfinite(loss) ? std::sqrt(sq) : loss) +
                    "; the weights were not updated, and the last checkpoint is intact");
      if (step == 0 && !o.dump_grads.empty()) {  // whole gradients: gathered from the tp shards (a collective)
        std::vector<std::pair<std::string, at::Tensor>> named;
        for (size_t i = 0; i < params.size(); ++i)
          if (grads[i].defined())
            named.emplace_back("grad." + model.checkpoint_name(params[i].first),
                               gather_whole(prep.table, params[i].first, grads[i].to(at::kFloat), dist.get()));
        if (lead) write_safetensors(o.dump_grads, named, {{"format", "pt"}});
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
      log(Json{{"step", step + 1},
               {"loss", loss},
               {"lr", lr},
               {"grad_norm", std::sqrt(sq)},
               {"tokens", sum.tokens},
               {"loss_tokens", sum.loss_tokens},
               {"tokens_per_s", static_cast<double>(step_inputs) / (t2 - t0)},
               {"seconds", {{"data", t_data - t0}, {"forward_backward", t1 - t_data}, {"optimizer", t2 - t_comm}, {"communication", t_comm - t1},
                            {"checkpoint", checkpoint_seconds}}}},
          "train", {"loss", "lr", "grad_norm", "tokens_per_s"}, step + 1);
      if (eval_rows && ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || step + 1 == steps)) {
        const ComputeCopyScope compute_with(copies ? &*copies : nullptr);
        Json e = evaluate(model, *eval_rows, micro, objective, mlm ? &*mlm : nullptr, o.seed, token_types, dist.get());
        e["step"] = step + 1;
        log(e, "eval", {"eval_loss", "eval_perplexity", "eval_accuracy"}, step + 1);
        sum.eval = e;
      }
      checkpoint_seconds = 0;
      if (o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0) {
        const double tc = now();
        if (lead) begin_train_checkpoint(o.out, step + 1);
        if (dist) dist->barrier();
        if (replica == 0) write_checkpoint_files(o.out, step + 1, rank, params, optimizer_state);
        if (dist) dist->barrier();
        if (lead)
          commit_train_checkpoint(o.out, step + 1, static_cast<uint64_t>(fs::file_size(metrics_path)), settings, data->position(),
                                  mesh_record, writers, o.keep_last);
        if (dist) dist->barrier();
        checkpoint_seconds = now() - tc;
      }
      ProgressStats ps;
      ps.samples = step + 1;
      ps.total_samples = steps;
      ps.tokens = sum.tokens;
      ps.unit = "steps";
      char detail[64];
      std::snprintf(detail, sizeof detail, "loss %.4f", loss);
      ps.detail = detail;
      if (step + 1 < steps) progress.update(ps);
      else progress.finish(ps);
    }
  } catch (const dist::DistError& e) {
    // A peer died or stopped answering: say where, for a run that --resume can continue.
    throw dist::DistError("step " + std::to_string(at_step) + ": a " + (tp > 1 ? "peer" : "data-parallel peer") + " of " + std::to_string(world) +
                          " failed or stopped answering (" + e.what() + "); --resume continues from the last checkpoint");
  }

  // Tensor parallel: every parameter gathered whole (a collective over each tp group) for the lead to write.
  std::map<std::string, at::Tensor> whole_params;
  if (tp > 1)
    for (const auto& [name, t] : params) {
      at::Tensor w = gather_whole(prep.table, name, t, dist.get());
      if (lead) whole_params.emplace(name, std::move(w));
    }
  std::map<std::string, at::Tensor>* whole = tp > 1 ? &whole_params : nullptr;
  sum.seconds = now() - t_start;
  if (!lead) return sum;
  // final/: written beside, then renamed into place, so a final/ directory is always complete.
  const fs::path final_dir = fs::path(o.out) / "final", tmp_dir = fs::path(o.out) / "final.tmp";
  fs::remove_all(tmp_dir);
  const std::string base = o.model_dir.empty() ? o.model_preset : fs::absolute(o.model_dir).lexically_normal().string();
  if (!o.save_adapters.empty()) write_peft_adapters(model, o.save_adapters, base, whole);
  if (o.merge_adapters) merge_lora_into_weights(model, whole);
  write_model_dir(model, tmp_dir.string(), at::kFloat, o.model_dir.empty() ? find_preset(o.model_preset).tokenizer : "", whole);
  if (lora && !o.merge_adapters) write_peft_adapters(model, tmp_dir.string(), base, whole);  // the training's result
  if (!o.model_dir.empty())
    for (const char* f : kModelSideFiles)
      if (fs::exists(fs::path(o.model_dir) / f)) fs::copy_file(fs::path(o.model_dir) / f, tmp_dir / f);
  fs::remove_all(final_dir);  // a resumed run that had finished before writes it again, the same
  fs::rename(tmp_dir, final_dir);
  sum.seconds = now() - t_start;
  return sum;
}

}  // namespace fme
