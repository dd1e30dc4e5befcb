// Qwen2 / Qwen2.5: pre-norm decoder blocks with grouped-query attention (q/k/v biases, RoPE), RMSNorm and
// a SwiGLU MLP. Module paths equal the HF checkpoint names: model.embed_tokens, model.layers.{i}.self_attn.
// {q,k,v,o}_proj, model.layers.{i}.mlp.{gate,up,down}_proj, model.layers.{i}.{input,post_attention}_layernorm,
// model.norm, and lm_head unless tie_word_embeddings (then lm_head.weight is model.embed_tokens.weight).
// Left out: the LM head's logits (fme extracts hidden states), KV cache, sliding window, rope scaling.
//
// Dimensions: B = batch, T = time, H = hidden, nh = query heads, nkv = key/value heads, hd = H / nh,
// I = intermediate (MLP) size, V = vocab.
#include "models/qwen2.h"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include "models/layers.h"

namespace fme {
namespace {

struct Qwen2AttentionImpl : torch::nn::Module {
  Qwen2AttentionImpl(Builder& b, const std::string& p, const Qwen2Config& c) : hd(c.head_dim()) {
    const int64_t H = c.hidden_size, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
    q_proj = register_module("q_proj", Linear(b, join_path(p, "q_proj"), H, nh * hd, true));
    k_proj = register_module("k_proj", Linear(b, join_path(p, "k_proj"), H, nkv * hd, true));
    v_proj = register_module("v_proj", Linear(b, join_path(p, "v_proj"), H, nkv * hd, true));
    o_proj = register_module("o_proj", Linear(b, join_path(p, "o_proj"), nh * hd, H, false));
  }

  // x [B,T,H], key_mask [B,T] -> [B,T,H]. With q/k/v colwise and o rowwise (tensor parallel), this process
  // holds nh/size query heads and nkv/size kv heads: the head counts come from the local weights.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_mask, const at::Tensor& cos, const at::Tensor& sin) {
    const int64_t B = x.size(0), T = x.size(1);
    const int64_t nh = q_proj->weight.size(0) / hd, nkv = k_proj->weight.size(0) / hd;
    at::Tensor q = q_proj(x).view({B, T, nh, hd}).transpose(1, 2);   // [B, nh, T, hd]
    at::Tensor k = k_proj(x).view({B, T, nkv, hd}).transpose(1, 2);  // [B, nkv, T, hd]
    at::Tensor v = v_proj(x).view({B, T, nkv, hd}).transpose(1, 2);  // [B, nkv, T, hd]
    q = apply_rope(q, cos, sin);
    k = apply_rope(k, cos, sin);
    at::Tensor o = attention(q, k, v.contiguous(), key_mask, /*causal=*/true);  // [B, T, nh*hd]
    return o_proj(o);                                                 // [B, T, H]
  }

  int64_t hd;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(Qwen2Attention);

struct Qwen2MLPImpl : torch::nn::Module {
  Qwen2MLPImpl(Builder& b, const std::string& p, const Qwen2Config& c) {
    const int64_t H = c.hidden_size, I = c.intermediate_size;
    gate_proj = register_module("gate_proj", Linear(b, join_path(p, "gate_proj"), H, I, false));
    up_proj = register_module("up_proj", Linear(b, join_path(p, "up_proj"), H, I, false));
    down_proj = register_module("down_proj", Linear(b, join_path(p, "down_proj"), I, H, false));
  }
  // down(silu(gate(x)) * up(x)): [B,T,H] -> [B,T,I] -> [B,T,H]
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor g = gate_proj(x);  // [B,T,I]
    at::silu_(g);
    return down_proj(g.mul_(up_proj(x)));
  }
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Qwen2MLP);

struct Qwen2DecoderLayerImpl : torch::nn::Module {
  Qwen2DecoderLayerImpl(Builder& b, const std::string& p, const Qwen2Config& c) {
    self_attn = register_module("self_attn", Qwen2Attention(b, join_path(p, "self_attn"), c));
    mlp = register_module("mlp", Qwen2MLP(b, join_path(p, "mlp"), c));
    input_layernorm = register_module("input_layernorm", RMSNorm(b, join_path(p, "input_layernorm"), c.hidden_size, c.rms_norm_eps));
    post_attention_layernorm = register_module(
        "post_attention_layernorm", RMSNorm(b, join_path(p, "post_attention_layernorm"), c.hidden_size, c.rms_norm_eps));
  }
  // x [B,T,H] -> [B,T,H]:  x += attn(norm1(x));  x += mlp(norm2(x))
  at::Tensor forward(at::Tensor x, const at::Tensor& key_mask, const at::Tensor& cos, const at::Tensor& sin) {
    x = x + self_attn(input_layernorm(x), key_mask, cos, sin);
    return x + mlp(post_attention_layernorm(x));
  }
  Qwen2Attention self_attn{nullptr};
  Qwen2MLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(Qwen2DecoderLayer);

// HF's Qwen2Model: the "model." prefix of every checkpoint name.
struct Qwen2ModelImpl : torch::nn::Module {
  Qwen2ModelImpl(Builder& b, const std::string& p, const Qwen2Config& c) {
    embed_tokens = register_module("embed_tokens", Embedding(b, join_path(p, "embed_tokens"), c.vocab_size, c.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      layers->push_back(Qwen2DecoderLayer(b, join_path(p, "layers." + std::to_string(i)), c));
    norm = register_module("norm", RMSNorm(b, join_path(p, "norm"), c.hidden_size, c.rms_norm_eps));
  }
  Embedding embed_tokens{nullptr};  // weight (V, H)
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(Qwen2Model);

struct Qwen2ForCausalLMImpl : torch::nn::Module {
  Qwen2ForCausalLMImpl(Builder& b, const Qwen2Config& c) {
    model = register_module("model", Qwen2Model(b, "model", c));
    if (!c.tie_word_embeddings)
      lm_head = register_module("lm_head", Linear(b, "lm_head", c.hidden_size, c.vocab_size, false));
  }
  Qwen2Model model{nullptr};
  Linear lm_head{nullptr};  // (V, H); absent when tied
};
TORCH_MODULE(Qwen2ForCausalLM);

class Qwen2 final : public Model {
 public:
  Qwen2(const Qwen2Config& c, Builder& b) : config_(c), cfg_(c), net_(b, c) {}

  std::string model_type() const override { return "qwen2"; }
  const ModelConfig& config() const override { return config_; }
  int64_t num_layers() const override { return cfg_.num_hidden_layers; }
  int64_t hidden_size() const override { return cfg_.hidden_size; }
  int64_t vocab_size() const override { return cfg_.vocab_size; }
  torch::nn::Module& module() override { return *net_; }
  std::vector<std::pair<std::string, std::string>> tied_parameters() const override {
    if (cfg_.tie_word_embeddings) return {{"lm_head.weight", "model.embed_tokens.weight"}};
    return {};
  }

  void forward(const Batch& batch, const ForwardOptions& opts) override {
    c10::InferenceMode guard;
    auto& m = *net_->model;
    const int64_t T = batch.input_ids.size(1);
    const int64_t last = opts.last_block < 0 ? num_layers() - 1 : opts.last_block;
    auto emit = [&](const std::string& name, const at::Tensor& x) {
      if (opts.capture) opts.capture(name, x);
    };

    at::Tensor x = m.embed_tokens(batch.input_ids, compute_dtype());  // [B,T,H]
    emit("embeddings", x);
    auto [cos, sin] = rope_tables(T, cfg_.head_dim(), cfg_.rope_theta, x.scalar_type());  // [T, hd]
    at::Tensor key_mask = batch.attention_mask.to(at::kBool);       // [B,T]
    for (int64_t i = 0; i <= last; ++i) {
      x = m.layers->ptr<Qwen2DecoderLayerImpl>(i)->forward(x, key_mask, cos, sin);  // [B,T,H]
      emit("resid_post." + std::to_string(i), x);
    }
    if (last == num_layers() - 1 && opts.final_norm) emit("final", m.norm(x));
  }

 private:
  ModelConfig config_;
  Qwen2Config cfg_;
  Qwen2ForCausalLM net_;
};

}  // namespace

std::unique_ptr<Model> make_qwen2(const Qwen2Config& config, Builder& b) { return std::make_unique<Qwen2>(config, b); }

}  // namespace fme
