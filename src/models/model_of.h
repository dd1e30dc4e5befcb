// What every architecture's Model has in common: its config (the variant and the family's own struct), the
// module tree built from it, the size accessors and the hook points of its blocks. Each family derives from
// ModelOf<Config, Net> and adds its forward and its model-level points.
#pragma once
#include <torch/nn/module.h>

#include "models/model.h"

namespace fme {

template <class Config, class Net>
class ModelOf : public Model {
 public:
  ModelOf(const Config& c, Builder& b) : config_(c), cfg_(c), net_(b, c) {}

  const ModelConfig& config() const override { return config_; }
  int64_t num_layers() const override { return cfg_.num_hidden_layers; }
  int64_t hidden_size() const override { return cfg_.hidden_size; }
  int64_t vocab_size() const override { return cfg_.vocab_size; }
  torch::nn::Module& module() override { return *net_; }

  // The seven points of every block, then the family's model-level points.
  std::vector<HookPoint> hook_points() const override {
    auto points = block_hook_points(cfg_.num_hidden_layers, cfg_.hidden_size, cfg_.intermediate_size,
                                    cfg_.num_attention_heads, cfg_.head_dim());
    for (auto& p : model_points()) points.push_back(std::move(p));
    return points;
  }

 protected:
  virtual std::vector<HookPoint> model_points() const = 0;  // e.g. ln_final.hook_normalized

  ModelConfig config_;
  Config cfg_;
  Net net_;
};

}  // namespace fme
