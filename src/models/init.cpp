#include "models/init.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>

#include <functional>
#include <optional>
#include <vector>

#include "models/layers.h"
#include "fill/counter_rng.h"

namespace fme {
namespace {

// N(0, std) by global element index (fill/counter_rng.h), so a shard holds exactly the values of the same
// elements of the whole tensor: a model gathered from any mesh is bit-identical to the unsharded one.
// Appends the fill blocks for fp32/bf16 tensors (run later, batched), one per fused part; other dtypes are
// filled here via fp32.
void normal_blocks(at::Tensor& t, uint64_t seed, const std::string& path, const ShardInfo& shard, float std_dev,
                   std::vector<NormalFill>& fills) {
  const auto& g = shard.global_shape;
  const int64_t dim = shard.dim < 0 ? 0 : shard.dim;
  const int64_t parts = shard.dim < 0 ? 1 : shard.parts;
  int64_t rows = 1, global_inner = 1, local_inner = 1, after = 1;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d < dim) rows *= t.size(d);
    else {
      local_inner *= t.size(d);
      global_inner *= g[d];
      if (d > dim) after *= g[d];
    }
  }
  const bool direct = t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16;
  at::Tensor tmp = direct ? t : at::empty(t.sizes(), at::kFloat);
  const int64_t part_len = local_inner / parts;  // one run of the sharded dim, with what follows it
  std::vector<NormalFill> mine;
  for (int64_t p = 0; p < parts; ++p) {
    NormalFill f;
    f.n_rows = rows;
    f.row_len = part_len;
    f.out_row_stride = local_inner;
    f.global_first_index = shard.dim < 0 ? 0 : shard.global_start(p) * after;
    f.global_row_stride = global_inner;
    f.key = stream_key(seed, path);
    f.std = std_dev;
    f.bf16 = tmp.scalar_type() == at::kBFloat16;
    f.out = static_cast<uint8_t*>(tmp.data_ptr()) + p * part_len * tmp.element_size();
    mine.push_back(f);
  }
  if (direct) {
    fills.insert(fills.end(), mine.begin(), mine.end());
    return;
  }
  fill_normal_batch(mine, at::get_num_threads());
  t.copy_(tmp);
}
}  // namespace

namespace {
void init_modules(Model& model, uint64_t seed, bool lora_only, bool fresh, int threads, const std::string& only_under) {
  c10::InferenceMode guard;
  double std_dev = 0.02;
  int64_t pad_row = -1;
  std::visit([&](const auto& c) { std_dev = c.initializer_range; }, model.config());
  pad_row = model.padding_row();
  const auto& shards = model.shards();
  // All normal fills run as one batch at the end: the threads start once, not once per tensor.
  std::vector<NormalFill> fills;
  std::vector<std::function<void()>> after_fills;  // writes into filled tensors (BERT's padding row)
  auto normal = [&](at::Tensor& w, const std::string& path) {
    auto it = shards.find(path);
    const ShardInfo whole{w.sizes().vec(), -1, 0, 1};
    normal_blocks(w, seed, path, it == shards.end() ? whole : it->second, static_cast<float>(std_dev), fills);
  };
  auto zero = [&](at::Tensor& t) {
    if (!fresh) t.zero_();  // fresh anonymous pages are zero already: touching them would only fault them in
  };

  for (const auto& item : model.module().named_modules("", /*include_self=*/false)) {
    const std::string& path = item.key();
    torch::nn::Module& m = *item.value();
    if (!only_under.empty() && path.compare(0, only_under.size(), only_under) != 0) continue;
    if (lora_only) {
      if (auto* lin = m.as<LinearImpl>(); lin && lin->lora_A.defined()) {
        normal(lin->lora_A, join_path(path, "lora_A"));
        lin->lora_B.zero_();
      }
    } else if (auto* lin = m.as<LinearImpl>()) {  // Conv1D too
      normal(lin->weight, join_path(path, "weight"));
      if (lin->bias.defined()) zero(lin->bias);
      if (lin->lora_A.defined()) {  // adapters start as a no-op: B = 0 (as PEFT)
        normal(lin->lora_A, join_path(path, "lora_A"));
        zero(lin->lora_B);
      }
    } else if (auto* emb = m.as<EmbeddingImpl>()) {
      normal(emb->weight, join_path(path, "weight"));
      // BERT's padding row is zero; with a vocab-sharded (rowwise) table only its owner holds it.
      const bool word = path.size() >= 15 && path.compare(path.size() - 15, 15, "word_embeddings") == 0;
      if (word && pad_row >= 0) {
        auto it = shards.find(join_path(path, "weight"));
        const int64_t first = it != shards.end() && it->second.dim == 0 ? it->second.offset : 0;
        if (pad_row >= first && pad_row < first + emb->weight.size(0)) {
          at::Tensor row = emb->weight[pad_row - first];
          after_fills.push_back([row]() mutable { row.zero_(); });
        }
      }
    } else if (auto* ln = m.as<LayerNormImpl>()) {
      ln->weight.fill_(1.0);
      zero(ln->bias);
    } else if (auto* rms = m.as<RMSNormImpl>()) {
      if (rms->unit_offset) zero(rms->weight);  // Gemma's (1 + w): w = 0 is the identity scale
      else rms->weight.fill_(1.0);
    } else {  // a module's own bias (BERT's cls.predictions.bias, its decoder's bias): zero, as HF
      for (auto& p : m.named_parameters(/*recurse=*/false))
        if (p.key() == "bias") zero(p.value());
    }
  }
  fill_normal_batch(fills, threads > 0 ? threads : at::get_num_threads(), RngKernel::kAuto, fresh);
  for (auto& f : after_fills) f();
}

}  // namespace

void init_weights(Model& model, uint64_t seed, bool fresh_memory, int threads, const std::string& only_under) {
  init_modules(model, seed, false, fresh_memory, threads, only_under);
}
void init_lora(Model& model, uint64_t seed) { init_modules(model, seed, true, false, 0, ""); }

}  // namespace fme
