// GPT-2: token + learned position embeddings, pre-LayerNorm blocks (causal attention with q, k, v fused in one
// Conv1D, then a gelu MLP), a final LayerNorm. Module paths equal HF's GPT2LMHeadModel names:
// transformer.{wte,wpe}, transformer.h.{i}.{ln_1,ln_2}, transformer.h.{i}.attn.{c_attn,c_proj},
// transformer.h.{i}.mlp.{c_fc,c_proj}, transformer.ln_f; lm_head.weight is tied to transformer.wte.weight.
// Hook points: resid_pre is ln_1's input, attn.hook_z the input of attn.c_proj in heads, attn_out attn's
// output, resid_mid ln_2's input, mlp.hook_post gelu(c_fc(x)), mlp_out the MLP's output, ln_final.hook_normalized
// the output of ln_f.
// Tensor parallelism (builtin:gpt2-tp): c_attn is split colwise by heads within each of its q, k, v parts (a
// process holds [q_r, k_r, v_r]), attn.c_proj rowwise; the MLP as Megatron's.
// logits() adds the LM head for training; dropout (embd, attn, resid) as HF's in train mode, inside a
// DropoutScope. Left out: KV cache, cross-attention.
//
// Dimensions: B = batch, T = time, H = n_embd, nh = n_head, hd = H / nh, I = n_inner (4H), V = vocab.
#include "models/gpt2/gpt2.h"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include <cmath>

#include "models/activation.h"
#include "models/causal_lm.h"
#include "models/dropout.h"
#include "models/layers.h"
#include "models/model_of.h"
#include "util/error.h"

namespace fme {
namespace {

struct Gpt2AttentionImpl : torch::nn::Module {
  Gpt2AttentionImpl(Builder& b, const std::string& p, const Gpt2Config& c, int64_t layer) : hd(c.head_dim()) {
    const int64_t H = c.hidden_size, nh = c.num_attention_heads;
    c_attn = register_module("c_attn", Conv1D(b, join_path(p, "c_attn"), H, 3 * H, /*parts=*/3));
    c_proj = register_module("c_proj", Conv1D(b, join_path(p, "c_proj"), H, H));
    const std::string heads = std::to_string(nh) + " heads";
    check_head_split(*c_attn, join_path(p, "c_attn"), nh, "query/key/value", heads);
    check_head_split(*c_proj, join_path(p, "c_proj"), nh, "attention output", heads);
    if (c_attn->par.group) opts.dropout_stream = uint64_t(c_attn->par.group->rank());  // its own heads' masks
    opts.causal = true;
    opts.dropout = c.attn_pdrop;
    resid_pdrop = c.resid_pdrop;
    opts.scale = 1.0 / std::sqrt(double(hd));
    if (c.scale_attn_by_inverse_layer_idx) opts.scale /= double(layer + 1);
  }
  // x [B,T,H] -> [B,T,H]: q, k, v are the three equal parts of c_attn's output (Hl = H, or H/tp of this
  // process's heads under tensor parallelism).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_mask, const BlockCapture& capture) {
    const int64_t B = x.size(0), T = x.size(1);
    at::Tensor qkv_all = c_attn(x);                                                  // [B,T,3Hl]
    const int64_t Hl = qkv_all.size(-1) / 3, nh = Hl / hd;
    auto qkv = qkv_all.split(Hl, -1);                                               // 3 x [B,T,Hl]
    auto heads = [&](const at::Tensor& y) { return y.view({B, T, nh, hd}).transpose(1, 2); };  // [B,nh,T,hd]
    at::Tensor z = attention(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]).contiguous(), key_mask, opts);  // [B,T,Hl]
    if (capture.wants(BlockPoint::AttnZ)) {
      at::Tensor whole = whole_input(*c_proj, z);  // [B,T,H]
      capture(BlockPoint::AttnZ, whole.unflatten(-1, {whole.size(-1) / hd, hd}));
    }
    return dropout(c_proj(z), resid_pdrop);  // HF's resid_dropout
  }
  int64_t hd;
  AttentionOptions opts;
  double resid_pdrop = 0;
  Conv1D c_attn{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Gpt2Attention);

struct Gpt2MLPImpl : torch::nn::Module {
  Gpt2MLPImpl(Builder& b, const std::string& p, const Gpt2Config& c)
      : tanh_gelu(c.activation_function != "gelu"), resid_pdrop(c.resid_pdrop) {
    c_fc = register_module("c_fc", Conv1D(b, join_path(p, "c_fc"), c.hidden_size, c.intermediate_size));
    c_proj = register_module("c_proj", Conv1D(b, join_path(p, "c_proj"), c.intermediate_size, c.hidden_size));
  }
  // c_proj(gelu(c_fc(x))): [B,T,H] -> [B,T,I] -> [B,T,H]; gelu_new is the tanh approximation.
  at::Tensor forward(const at::Tensor& x, const BlockCapture& capture) {
    at::Tensor h = c_fc(x);  // [B,T,I] (I/tp under tensor parallelism)
    if (tanh_gelu) gelu_tanh_in_place(h);
    else h = at::gelu(h);
    if (capture.wants(BlockPoint::MlpPost)) capture(BlockPoint::MlpPost, whole_input(*c_proj, h));
    return dropout(c_proj(h), resid_pdrop);
  }
  bool tanh_gelu;
  double resid_pdrop;
  Conv1D c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Gpt2MLP);

struct Gpt2BlockImpl : torch::nn::Module {
  Gpt2BlockImpl(Builder& b, const std::string& p, const Gpt2Config& c, int64_t layer) {
    ln_1 = register_module("ln_1", LayerNorm(b, join_path(p, "ln_1"), c.hidden_size, c.layer_norm_eps));
    attn = register_module("attn", Gpt2Attention(b, join_path(p, "attn"), c, layer));
    ln_2 = register_module("ln_2", LayerNorm(b, join_path(p, "ln_2"), c.hidden_size, c.layer_norm_eps));
    mlp = register_module("mlp", Gpt2MLP(b, join_path(p, "mlp"), c));
  }
  // x [B,T,H] -> [B,T,H]:  x += attn(ln_1(x));  x += mlp(ln_2(x))
  at::Tensor forward(at::Tensor x, const at::Tensor& key_mask, const BlockCapture& capture) {
    capture(BlockPoint::ResidPre, x);
    at::Tensor a = attn(ln_1(x), key_mask, capture);  // [B,T,H]
    capture(BlockPoint::AttnOut, a);
    x = x + a;
    capture(BlockPoint::ResidMid, x);
    at::Tensor m = mlp(ln_2(x), capture);  // [B,T,H]
    capture(BlockPoint::MlpOut, m);
    x = x + m;
    capture(BlockPoint::ResidPost, x);
    return x;
  }
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Gpt2Attention attn{nullptr};
  Gpt2MLP mlp{nullptr};
};
TORCH_MODULE(Gpt2Block);

// HF's GPT2Model: the "transformer." prefix of every checkpoint name.
struct Gpt2ModelImpl : torch::nn::Module {
  static constexpr const char* kPrefix = "transformer";
  Gpt2ModelImpl(Builder& b, const std::string& p, const Gpt2Config& c) {
    wte = register_module("wte", Embedding(b, join_path(p, "wte"), c.vocab_size, c.hidden_size));
    wpe = register_module("wpe", Embedding(b, join_path(p, "wpe"), c.max_position_embeddings, c.hidden_size));
    h = register_module("h", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) h->push_back(Gpt2Block(b, join_path(p, "h." + std::to_string(i)), c, i));
    ln_f = register_module("ln_f", LayerNorm(b, join_path(p, "ln_f"), c.hidden_size, c.layer_norm_eps));
  }
  Embedding wte{nullptr}, wpe{nullptr};  // (V, H), (n_positions, H)
  torch::nn::ModuleList h{nullptr};
  LayerNorm ln_f{nullptr};
};
TORCH_MODULE(Gpt2Model);

// HF's GPT2LMHeadModel.
class Gpt2 final : public ModelOf<Gpt2Config, CausalLM<Gpt2Model>> {
 public:
  using ModelOf::ModelOf;

  std::string model_type() const override { return "gpt2"; }
  int64_t max_positions() const override { return cfg_.max_position_embeddings; }
  std::vector<std::pair<std::string, double>> dropout_probabilities() const override {
    return {{"resid_pdrop", cfg_.resid_pdrop}, {"embd_pdrop", cfg_.embd_pdrop}, {"attn_pdrop", cfg_.attn_pdrop}};
  }
  std::vector<std::pair<std::string, std::string>> tied_parameters() const override {
    if (cfg_.tie_word_embeddings) return {{"lm_head.weight", "transformer.wte.weight"}};
    return {};
  }

  void forward(const Batch& batch, const Capture& capture) override {
    c10::InferenceMode guard;
    at::Tensor x = blocks(batch, capture, capture.last_block(num_layers()));  // [B,T,H]
    if (capture.wants(kLnFinal)) capture(kLnFinal, net_->body->ln_f(x));
  }

  at::Tensor logits(const Batch& batch, const Capture& capture) override {
    auto& m = *net_->body;
    at::Tensor h = m.ln_f(blocks(batch, capture, num_layers() - 1));  // [B,T,H]
    capture(kLnFinal, h);
    return net_->logits(h, *m.wte, "gpt2");  // [B,T,V]
  }

 private:
  // Token and position embeddings, then blocks 0..last: the residual stream after block `last`.
  at::Tensor blocks(const Batch& batch, const Capture& capture, int64_t last) {
    auto& m = *net_->body;
    const int64_t T = batch.input_ids.size(1);
    if (T > cfg_.max_position_embeddings)
      throw ShapeError("gpt2: sequence of " + std::to_string(T) + " tokens exceeds n_positions " +
                       std::to_string(cfg_.max_position_embeddings));
    at::Tensor pos = position_ids(batch);                                                      // [B,T] or [1,T]
    at::Tensor x = dropout(m.wte(batch.input_ids, compute_dtype()) + m.wpe(pos, compute_dtype()), cfg_.embd_pdrop);  // [B,T,H]
    at::Tensor key_mask = attention_keys(batch);                                               // [B,T]
    for (int64_t i = 0; i <= last; ++i) x = m.h->ptr<Gpt2BlockImpl>(i)->forward(x, key_mask, BlockCapture{capture, i});
    return x;
  }

 protected:
  std::vector<HookPoint> model_points() const override {
    return {ln_final_point(cfg_.num_hidden_layers, cfg_.hidden_size)};
  }
};

}  // namespace

std::unique_ptr<Model> make_gpt2(const Gpt2Config& config, Builder& b) { return std::make_unique<Gpt2>(config, b); }

}  // namespace fme
