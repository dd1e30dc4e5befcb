#include "models/init.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>

#include "models/layers.h"
#include "util/counter_rng.h"

namespace fme {
namespace {

// N(0, std) by global element index (util/counter_rng.h), so a shard holds exactly the values of the same
// elements of the whole tensor: a model gathered from any mesh is bit-identical to the unsharded one.
void fill_normal_global(at::Tensor& t, uint64_t seed, const std::string& path, const ShardInfo& shard, float std_dev,
                        bool fresh) {
  const uint64_t key = stream_key(seed, path);
  const auto& g = shard.global_shape;
  const int64_t dim = shard.dim < 0 ? 0 : shard.dim;
  int64_t rows = 1, global_inner = 1, local_inner = 1, after = 1;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d < dim) rows *= t.size(d);
    else {
      local_inner *= t.size(d);
      global_inner *= g[d];
      if (d > dim) after *= g[d];
    }
  }
  const int64_t first = shard.dim < 0 ? 0 : shard.offset * after;
  const int threads = at::get_num_threads();
  if (t.scalar_type() == at::kFloat) {
    fill_normal(t.data_ptr<float>(), rows, local_inner, local_inner, first, global_inner, key, 0.f, std_dev, threads,
                RngKernel::kAuto, fresh);
  } else if (t.scalar_type() == at::kBFloat16) {
    fill_normal_bf16(reinterpret_cast<uint16_t*>(t.data_ptr()), rows, local_inner, local_inner, first, global_inner, key,
                     0.f, std_dev, threads, RngKernel::kAuto, fresh);
  } else {
    at::Tensor tmp = at::empty(t.sizes(), at::kFloat);
    fill_normal(tmp.data_ptr<float>(), rows, local_inner, local_inner, first, global_inner, key, 0.f, std_dev, threads);
    t.copy_(tmp);
  }
}

}  // namespace

namespace {
void init_modules(Model& model, uint64_t seed, bool lora_only, bool fresh) {
  c10::InferenceMode guard;
  double std_dev = 0.02;
  int64_t pad_row = -1;
  std::visit([&](const auto& c) { std_dev = c.initializer_range; }, model.config());
  if (auto* bert = std::get_if<BertConfig>(&model.config())) pad_row = bert->pad_token_id;
  const auto& shards = model.shards();
  auto normal = [&](at::Tensor& w, const std::string& path) {
    auto it = shards.find(path);
    ShardInfo whole{w.sizes().vec(), -1, 0};
    fill_normal_global(w, seed, path, it == shards.end() ? whole : it->second, static_cast<float>(std_dev), fresh);
  };
  auto zero = [&](at::Tensor& t) {
    if (!fresh) t.zero_();  // fresh anonymous pages are zero already: touching them would only fault them in
  };

  for (const auto& item : model.module().named_modules("", /*include_self=*/false)) {
    const std::string& path = item.key();
    torch::nn::Module& m = *item.value();
    if (lora_only) {
      if (auto* lin = m.as<LinearImpl>(); lin && lin->lora_A.defined()) {
        normal(lin->lora_A, join_path(path, "lora_A"));
        lin->lora_B.zero_();
      }
    } else if (auto* lin = m.as<LinearImpl>()) {
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
        if (pad_row >= first && pad_row < first + emb->weight.size(0)) emb->weight[pad_row - first].zero_();
      }
    } else if (auto* ln = m.as<LayerNormImpl>()) {
      ln->weight.fill_(1.0);
      zero(ln->bias);
    } else if (auto* rms = m.as<RMSNormImpl>()) {
      rms->weight.fill_(1.0);
    }
  }
}

}  // namespace

void init_weights(Model& model, uint64_t seed, bool fresh_memory) { init_modules(model, seed, false, fresh_memory); }
void init_lora(Model& model, uint64_t seed) { init_modules(model, seed, true, false); }

}  // namespace fme
