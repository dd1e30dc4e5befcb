// The interface every architecture implements, kept free of <torch/torch.h> so that pipelines and the CLI
// compile quickly. A model is a module tree whose dotted parameter paths equal the Hugging Face names; a
// forward pass reports the hook points (models/hook_points.h) a Capture asks for.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/model_config.h"
#include "models/build.h"
#include "models/hook_points.h"

namespace torch::nn {
class Module;
}

namespace fme {

// B = batch, T = time (tokens), H = hidden size. Right padding: attention_mask[b, t] = 1 for real tokens.
// Packed rows (several documents in one row, for training) add segment_ids and position_ids: a token attends
// only to tokens of its own segment, and positions restart at 0 with each document.
struct Batch {
  at::Tensor input_ids;       // [B,T] int64
  at::Tensor attention_mask;  // [B,T] int64, 1 = real token
  at::Tensor token_type_ids;  // [B,T] int64, BERT only; undefined = all zeros
  at::Tensor segment_ids{};   // [B,T] int64, > 0 = the document a real token belongs to; undefined = one per row
  at::Tensor position_ids{};  // [B,T] int64; undefined = 0..T-1 in every row
};

// What attention() takes as its key_mask for `batch`: attention_mask as bool, or with segment_ids the segment
// numbers (0 at padding), which also keep each query within its own segment.
at::Tensor attention_keys(const Batch& batch);
// batch.position_ids, or [1,T] 0..T-1 (broadcast over the rows).
at::Tensor position_ids(const Batch& batch);

class Model {
 public:
  virtual ~Model() = default;
  virtual std::string model_type() const = 0;  // "qwen2", "bert", ...
  virtual const ModelConfig& config() const = 0;
  virtual int64_t num_layers() const = 0;
  virtual int64_t hidden_size() const = 0;
  virtual int64_t vocab_size() const = 0;
  // The longest sequence the model accepts (learned positions: BERT, GPT-2); 0 when unbounded (RoPE).
  virtual int64_t max_positions() const { return 0; }
  // How many token_type_ids (segments) a Batch may use: BERT's type_vocab_size; 0 when the model takes none.
  virtual int64_t token_types() const { return 0; }
  // The embedding row kept at zero at initialisation (BERT's pad_token_id), or -1.
  virtual int64_t padding_row() const { return -1; }

  // Every point a forward can report, in the order it computes them (under tensor parallelism: global shapes).
  virtual std::vector<HookPoint> hook_points() const = 0;
  // Runs the model (no autograd) up to the deepest block `capture` needs, reporting the points it asks for.
  // Under tensor parallelism every rank passes the same request (split points are gathered collectively).
  virtual void forward(const Batch& batch, const Capture& capture) = 0;
  // The training forward, through every block, with autograd as the caller's grad mode says: the logits
  // [B,T,V] (compute dtype) of the model's LM head - a decoder's lm_head or tied embedding (Gemma 2 soft-caps
  // them: final_logit_softcapping), BertForMaskedLM's cls.predictions head. `capture` may ask for points as
  // forward() does. ConfigError when the model has no head (a BERT built without cls.predictions) or its head
  // is split over a mesh.
  virtual at::Tensor logits(const Batch& batch, const Capture& capture = {}) = 0;
  // The name a Hugging Face checkpoint of this model stores `param` under (save_pretrained's names): the
  // path itself, or its class's prefixed form (BertForMaskedLM: "bert.<path>", its head "cls.*" as is).
  virtual std::string checkpoint_name(const std::string& param) const { return param; }
  // The config's dropout probabilities by config.json key (training honours or refuses them).
  virtual std::vector<std::pair<std::string, double>> dropout_probabilities() const { return {}; }

  // The module tree (HF names); parameters in registration order.
  virtual torch::nn::Module& module() = 0;
  std::vector<std::pair<std::string, at::Tensor>> named_parameters();
  // Names that alias another parameter (tied embeddings: "lm_head.weight" -> "model.embed_tokens.weight").
  virtual std::vector<std::pair<std::string, std::string>> tied_parameters() const { return {}; }

  // Where each parameter sits in its global tensor (recorded by the Builder that made the model).
  const std::map<std::string, ShardInfo>& shards() const { return shards_; }
  void set_shards(std::map<std::string, ShardInfo> s) { shards_ = std::move(s); }

  // Casts every floating parameter to `dtype` (at::kFloat or at::kBFloat16) and computes in it.
  void to(at::ScalarType dtype);
  at::ScalarType dtype();  // the parameters' dtype (weights)

  // The dtype activations are computed in. Parameters stored in another dtype (bf16 weights with fp32
  // compute) are converted op by op just before use, so the result equals a forward in the compute dtype over
  // the stored (rounded) weights, at the memory cost of the stored dtype. Default: the parameters' dtype.
  at::ScalarType compute_dtype() const { return compute_dtype_; }
  void set_compute_dtype(at::ScalarType dtype) { compute_dtype_ = dtype; }

 private:
  std::map<std::string, ShardInfo> shards_;
  at::ScalarType compute_dtype_ = at::kFloat;
};

// Builds a model for `config` whose parameters come from `builder` (whole or sharded, uninitialised).
std::unique_ptr<Model> create_model(const ModelConfig& config, Builder& builder);
// Whole, uninitialised parameters in `options` (default: CPU fp32; at::kMeta for a shape-only model).
std::unique_ptr<Model> create_model(const ModelConfig& config, at::TensorOptions options = {});

}  // namespace fme
