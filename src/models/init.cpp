#include "models/init.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include "models/layers.h"

namespace fme {
namespace {

// FNV-1a over the path, mixed with the seed (splitmix64): a stable per-parameter stream.
uint64_t stream_seed(uint64_t seed, const std::string& path) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : path) h = (h ^ c) * 1099511628211ull;
  uint64_t z = h + seed * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

void init_weights(Model& model, uint64_t seed) {
  c10::InferenceMode guard;
  double std_dev = 0.02;
  int64_t pad_row = -1;
  std::visit([&](const auto& c) { std_dev = c.initializer_range; }, model.config());
  if (auto* bert = std::get_if<BertConfig>(&model.config())) pad_row = bert->pad_token_id;

  for (const auto& item : model.module().named_modules("", /*include_self=*/false)) {
    const std::string& path = item.key();
    torch::nn::Module& m = *item.value();
    auto normal = [&](at::Tensor& w) {
      at::Generator gen = at::detail::createCPUGenerator(stream_seed(seed, path + ".weight"));
      at::Tensor tmp = at::empty(w.sizes(), at::kFloat);  // draw in fp32 for the same values at any dtype
      tmp.normal_(0.0, std_dev, gen);
      w.copy_(tmp);
    };
    if (auto* lin = m.as<torch::nn::LinearImpl>()) {
      normal(lin->weight);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* emb = m.as<torch::nn::EmbeddingImpl>()) {
      normal(emb->weight);
      if (pad_row >= 0 && path.size() >= 15 && path.compare(path.size() - 15, 15, "word_embeddings") == 0 &&
          pad_row < emb->weight.size(0))
        emb->weight[pad_row].zero_();
    } else if (auto* ln = m.as<torch::nn::LayerNormImpl>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    } else if (auto* rms = m.as<RMSNormImpl>()) {
      rms->weight.fill_(1.0);
    }
  }
}

}  // namespace fme
