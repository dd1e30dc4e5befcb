// The pre-norm decoder: blocks of grouped-query attention (Gemma 2 adds norms after attention and around the
// MLP, (1 + w) norms, scaled embeddings, soft-capped scores, sliding-window layers and a GeGLU MLP) (RoPE; optional q/k/v and o biases; Qwen3's per-head
// q/k RMSNorm before RoPE), RMSNorm and a SwiGLU MLP (optional biases). Module paths equal the HF checkpoint
// names, the same for every variant: model.embed_tokens, model.layers.{i}.self_attn.{q,k,v,o}_proj (and
// .{q,k}_norm), model.layers.{i}.mlp.{gate,up,down}_proj, model.layers.{i}.{input,post_attention}_layernorm,
// model.norm, and lm_head unless tie_word_embeddings (then lm_head.weight is model.embed_tokens.weight).
// Hook points (models/hook_points.h): resid_pre is the block's input, attn.hook_z the input of o_proj in heads,
// attn_out what is added to the residual (Gemma 2: after post_attention_layernorm), resid_mid the residual
// between attention and MLP, mlp.hook_post act(gate) * up (the input of down_proj), mlp_out what is added
// (Gemma 2: after post_feedforward_layernorm), ln_final.hook_normalized the output of model.norm.
// logits() adds the LM head for training. Left out: KV cache.
//
// Dimensions: B = batch, T = time, H = hidden, nh = query heads, nkv = key/value heads, hd = head_dim
// (explicit, or H / nh), I = intermediate (MLP) size, V = vocab.
#include "models/decoder/decoder.h"

#include <c10/core/InferenceMode.h>

#include <cmath>
#include <torch/torch.h>

#include "models/causal_lm.h"
#include "models/dropout.h"
#include "models/activation.h"
#include "models/layers.h"
#include "models/model_of.h"
#include "util/error.h"

namespace fme {
namespace {

struct DecoderAttentionImpl : torch::nn::Module {
  DecoderAttentionImpl(Builder& b, const std::string& p, const DecoderConfig& c, int64_t layer) : hd(c.head_dim()) {
    opts.causal = true;
    if (c.query_pre_attn_scalar > 0) opts.scale = 1.0 / std::sqrt(c.query_pre_attn_scalar);  // Gemma 2
    opts.softcap = c.attn_logit_softcapping;
    opts.dropout = c.attention_dropout;
    if (layer < static_cast<int64_t>(c.sliding.size()) && c.sliding[layer]) opts.window = c.sliding_window;
    const int64_t H = c.hidden_size, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
    q_proj = register_module("q_proj", Linear(b, join_path(p, "q_proj"), H, nh * hd, c.qkv_bias));
    k_proj = register_module("k_proj", Linear(b, join_path(p, "k_proj"), H, nkv * hd, c.qkv_bias));
    v_proj = register_module("v_proj", Linear(b, join_path(p, "v_proj"), H, nkv * hd, c.qkv_bias));
    o_proj = register_module("o_proj", Linear(b, join_path(p, "o_proj"), nh * hd, H, c.o_bias));
    const std::string counts = std::to_string(nh) + " query heads, " + std::to_string(nkv) + " key/value heads";
    check_head_split(*q_proj, join_path(p, "q_proj"), nh, "query", counts);
    check_head_split(*k_proj, join_path(p, "k_proj"), nkv, "key/value", counts);
    check_head_split(*v_proj, join_path(p, "v_proj"), nkv, "key/value", counts);
    check_head_split(*o_proj, join_path(p, "o_proj"), nh, "query", counts);
    if (q_proj->par.group) opts.dropout_stream = uint64_t(q_proj->par.group->rank());  // its own heads' masks
    if (c.qk_norm) {  // Qwen3: one RMSNorm of width hd, shared by every head
      q_norm = register_module("q_norm", RMSNorm(b, join_path(p, "q_norm"), hd, c.rms_norm_eps));
      k_norm = register_module("k_norm", RMSNorm(b, join_path(p, "k_norm"), hd, c.rms_norm_eps));
      if (q_proj->par.split == Split::Colwise) q_norm->split_input_group = q_proj->par.group;  // on this process's heads
      if (k_proj->par.split == Split::Colwise) k_norm->split_input_group = k_proj->par.group;
    }
  }

  // x [B,T,H], key_mask [B,T] -> [B,T,H]. With q/k/v colwise and o rowwise (tensor parallel), this process
  // holds nh/size query heads and nkv/size kv heads: the head counts come from the local weights.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_mask, const at::Tensor& cos, const at::Tensor& sin,
                     const BlockCapture& capture) {
    const int64_t B = x.size(0), T = x.size(1);
    const int64_t nh = q_proj->weight.size(0) / hd, nkv = k_proj->weight.size(0) / hd;
    at::Tensor q = q_proj(x).view({B, T, nh, hd});   // [B, T, nh, hd]
    at::Tensor k = k_proj(x).view({B, T, nkv, hd});  // [B, T, nkv, hd]
    if (q_norm) {
      q = q_norm(q);
      k = k_norm(k);
    }
    q = apply_rope(q.transpose(1, 2), cos, sin);                      // [B, nh, T, hd]
    k = apply_rope(k.transpose(1, 2), cos, sin);                      // [B, nkv, T, hd]
    at::Tensor v = v_proj(x).view({B, T, nkv, hd}).transpose(1, 2);  // [B, nkv, T, hd]
    at::Tensor o = attention(q, k, v.contiguous(), key_mask, opts);   // [B, T, nh*hd]
    if (capture.wants(BlockPoint::AttnZ)) capture(BlockPoint::AttnZ, whole_input(*o_proj, o).unflatten(-1, {-1, hd}));
    return o_proj(o);                                                 // [B, T, H]
  }

  int64_t hd;
  AttentionOptions opts;  // causal; Gemma 2: its scale, soft cap and (sliding layers) window
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // Qwen3 only
};
TORCH_MODULE(DecoderAttention);

struct DecoderMLPImpl : torch::nn::Module {
  DecoderMLPImpl(Builder& b, const std::string& p, const DecoderConfig& c) : gelu_tanh(c.hidden_act == "gelu_pytorch_tanh") {
    const int64_t H = c.hidden_size, I = c.intermediate_size;
    gate_proj = register_module("gate_proj", Linear(b, join_path(p, "gate_proj"), H, I, c.mlp_bias));
    up_proj = register_module("up_proj", Linear(b, join_path(p, "up_proj"), H, I, c.mlp_bias));
    down_proj = register_module("down_proj", Linear(b, join_path(p, "down_proj"), I, H, c.mlp_bias));
  }
  // down(act(gate(x)) * up(x)), act = silu (SwiGLU) or tanh-approximated gelu (Gemma's GeGLU):
  // [B,T,H] -> [B,T,I] -> [B,T,H]
  at::Tensor forward(const at::Tensor& x, const BlockCapture& capture) {
    at::Tensor g = gate_proj(x);  // [B,T,I]
    if (gelu_tanh) gelu_tanh_in_place(g);
    else silu_in_place(g);
    g.mul_(up_proj(x));
    if (capture.wants(BlockPoint::MlpPost)) capture(BlockPoint::MlpPost, whole_input(*down_proj, g));
    return down_proj(g);
  }
  bool gelu_tanh;
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(DecoderMLP);

struct DecoderLayerImpl : torch::nn::Module {
  DecoderLayerImpl(Builder& b, const std::string& p, const DecoderConfig& c, int64_t layer) : gemma(c.gemma_norms) {
    auto norm = [&](const char* name) {
      return register_module(name, RMSNorm(b, join_path(p, name), c.hidden_size, c.rms_norm_eps, c.gemma_norms));
    };
    self_attn = register_module("self_attn", DecoderAttention(b, join_path(p, "self_attn"), c, layer));
    mlp = register_module("mlp", DecoderMLP(b, join_path(p, "mlp"), c));
    input_layernorm = norm("input_layernorm");
    post_attention_layernorm = norm("post_attention_layernorm");
    if (gemma) {
      pre_feedforward_layernorm = norm("pre_feedforward_layernorm");
      post_feedforward_layernorm = norm("post_feedforward_layernorm");
    }
  }
  // x [B,T,H] -> [B,T,H]. Llama/Qwen: x += attn(input_ln(x)); x += mlp(post_attention_ln(x)).
  // Gemma 2 (norms on both sides): x += post_attention_ln(attn(input_ln(x))); x += post_ff_ln(mlp(pre_ff_ln(x))).
  at::Tensor forward(at::Tensor x, const at::Tensor& key_mask, const at::Tensor& cos, const at::Tensor& sin,
                     const BlockCapture& capture) {
    capture(BlockPoint::ResidPre, x);
    at::Tensor a = self_attn(input_layernorm(x), key_mask, cos, sin, capture);  // [B,T,H]
    if (gemma) a = post_attention_layernorm(a);
    capture(BlockPoint::AttnOut, a);
    x = x + a;
    capture(BlockPoint::ResidMid, x);
    at::Tensor m = mlp(gemma ? pre_feedforward_layernorm(x) : post_attention_layernorm(x), capture);  // [B,T,H]
    if (gemma) m = post_feedforward_layernorm(m);
    capture(BlockPoint::MlpOut, m);
    x = x + m;
    capture(BlockPoint::ResidPost, x);
    return x;
  }
  bool gemma;
  DecoderAttention self_attn{nullptr};
  DecoderMLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  RMSNorm pre_feedforward_layernorm{nullptr}, post_feedforward_layernorm{nullptr};  // Gemma 2 only
};
TORCH_MODULE(DecoderLayer);

// HF's DecoderModel: the "model." prefix of every checkpoint name.
struct DecoderModelImpl : torch::nn::Module {
  static constexpr const char* kPrefix = "model";
  DecoderModelImpl(Builder& b, const std::string& p, const DecoderConfig& c) {
    embed_tokens = register_module("embed_tokens", Embedding(b, join_path(p, "embed_tokens"), c.vocab_size, c.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      layers->push_back(DecoderLayer(b, join_path(p, "layers." + std::to_string(i)), c, i));
    norm = register_module("norm", RMSNorm(b, join_path(p, "norm"), c.hidden_size, c.rms_norm_eps, c.gemma_norms));
  }
  Embedding embed_tokens{nullptr};  // weight (V, H)
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(DecoderModel);

class Decoder final : public ModelOf<DecoderConfig, CausalLM<DecoderModel>> {
 public:
  using ModelOf::ModelOf;

  std::string model_type() const override { return cfg_.model_type; }
  std::vector<std::pair<std::string, double>> dropout_probabilities() const override {
    return {{"attention_dropout", cfg_.attention_dropout}};
  }
  std::vector<std::pair<std::string, std::string>> tied_parameters() const override {
    if (cfg_.tie_word_embeddings) return {{"lm_head.weight", "model.embed_tokens.weight"}};
    return {};
  }

  void forward(const Batch& batch, const Capture& capture) override {
    c10::InferenceMode guard;
    at::Tensor x = blocks(batch, capture, capture.last_block(num_layers()));  // [B,T,H]
    if (capture.wants(kLnFinal)) capture(kLnFinal, net_->body->norm(x));
  }

  at::Tensor logits(const Batch& batch, const Capture& capture) override {
    auto& m = *net_->body;
    at::Tensor h = m.norm(blocks(batch, capture, num_layers() - 1));  // [B,T,H]
    capture(kLnFinal, h);
    at::Tensor y = net_->logits(h, *m.embed_tokens, cfg_.model_type);  // [B,T,V]
    // Gemma 2: cap * tanh(logits / cap) (HF applies it to the logits it returns and trains on).
    if (cfg_.final_logit_softcapping > 0) y = at::tanh(y / cfg_.final_logit_softcapping) * cfg_.final_logit_softcapping;
    return y;
  }

 private:
  // Embeddings, then blocks 0..last (reporting what `capture` asks): the residual stream after block `last`.
  at::Tensor blocks(const Batch& batch, const Capture& capture, int64_t last) {
    auto& m = *net_->body;
    const int64_t T = batch.input_ids.size(1);
    at::Tensor x = m.embed_tokens(batch.input_ids, compute_dtype());  // [B,T,H]
    // Gemma: times sqrt(H), the scalar rounded to the compute dtype first (HF's normalizer tensor).
    if (cfg_.gemma_norms) x = x * at::scalar_tensor(std::sqrt(double(cfg_.hidden_size)), x.options());
    auto [cos, sin] = rope_tables(T, cfg_.head_dim(), cfg_.rope_theta, x.scalar_type(), cfg_.rope_scaling);  // [T, hd]
    cos = cos.to(x.device()), sin = sin.to(x.device());  // built on the CPU; a no-op there
    if (batch.position_ids.defined()) {  // packed rows: each document's positions from 0 (all below T)
      const at::Tensor pos = batch.position_ids.reshape({-1});
      cos = cos.index_select(0, pos).view({x.size(0), 1, T, -1});  // [B,1,T,hd]
      sin = sin.index_select(0, pos).view({x.size(0), 1, T, -1});
    }
    at::Tensor key_mask = attention_keys(batch);                    // [B,T]
    for (int64_t i = 0; i <= last; ++i)
      x = m.layers->ptr<DecoderLayerImpl>(i)->forward(x, key_mask, cos, sin, BlockCapture{capture, i});  // [B,T,H]
    return x;
  }

 protected:
  std::vector<HookPoint> model_points() const override {
    return {ln_final_point(cfg_.num_hidden_layers, cfg_.hidden_size)};
  }
};

}  // namespace

std::unique_ptr<Model> make_decoder(const DecoderConfig& config, Builder& b) { return std::make_unique<Decoder>(config, b); }

}  // namespace fme
