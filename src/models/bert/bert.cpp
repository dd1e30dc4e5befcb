// BERT: word + position + token-type embeddings with LayerNorm, then post-LN encoder blocks
// (self-attention -> dense -> LayerNorm(x + .), GELU MLP -> LayerNorm(x + .)) and a tanh pooler on [CLS].
// Module paths equal HF BertModel's checkpoint names: embeddings.{word,position,token_type}_embeddings,
// embeddings.LayerNorm, encoder.layer.{i}.attention.self.{query,key,value}, encoder.layer.{i}.attention.output.
// {dense,LayerNorm}, encoder.layer.{i}.intermediate.dense, encoder.layer.{i}.output.{dense,LayerNorm},
// pooler.dense; with the MLM head cls.predictions.{transform.dense,transform.LayerNorm,bias}, the encoder's
// names then stored under "bert." (checkpoint_name).
// Hook points (post-norm, as the goldens' README defines them): resid_pre is the layer's input, attn.hook_z the
// input of attention.output.dense in heads, attn_out that dense's output before the add & LayerNorm,
// resid_mid the output of attention.output.LayerNorm, mlp.hook_post the intermediate's activation, mlp_out
// output.dense's output before the add & LayerNorm, resid_post the layer's output; no ln_final;
// pooler_output [B,H] (per sequence). BertForMaskedLM's head (cls.predictions) when the config asks for it
// (mlm_head: fitted from the checkpoint, or set for training). Dropout as HF's in train mode, inside a
// DropoutScope. Left out: relative position embeddings,
// the NSP head.
//
// Dimensions: B = batch, T = time, H = hidden, nh = heads, hd = H / nh, I = intermediate size.
#include "models/bert/bert.h"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include "models/dropout.h"
#include "models/layers.h"
#include "models/vocab_projection.h"
#include "models/model_of.h"
#include "util/error.h"

namespace fme {
namespace {

struct BertEmbeddingsImpl : torch::nn::Module {
  BertEmbeddingsImpl(Builder& b, const std::string& p, const BertConfig& c) : hidden_dropout(c.hidden_dropout_prob) {
    word_embeddings = register_module("word_embeddings", Embedding(b, join_path(p, "word_embeddings"), c.vocab_size, c.hidden_size));
    position_embeddings = register_module(
        "position_embeddings", Embedding(b, join_path(p, "position_embeddings"), c.max_position_embeddings, c.hidden_size));
    token_type_embeddings = register_module(
        "token_type_embeddings", Embedding(b, join_path(p, "token_type_embeddings"), c.type_vocab_size, c.hidden_size));
    LayerNorm = register_module("LayerNorm", fme::LayerNorm(b, join_path(p, "LayerNorm"), c.hidden_size, c.layer_norm_eps));
  }
  // ids, types [B,T], pos [B,T] or [1,T] -> [B,T,H] in the compute dtype `dt`
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& types, const at::Tensor& pos, at::ScalarType dt) {
    at::Tensor x = word_embeddings(ids, dt) + token_type_embeddings(types, dt) + position_embeddings(pos, dt);
    return dropout(LayerNorm(x), hidden_dropout);
  }
  double hidden_dropout = 0;
  Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  fme::LayerNorm LayerNorm{nullptr};
};
TORCH_MODULE(BertEmbeddings);

struct BertSelfAttentionImpl : torch::nn::Module {
  BertSelfAttentionImpl(Builder& b, const std::string& p, const BertConfig& c) : hd(c.head_dim()) {
    const int64_t H = c.hidden_size;
    query = register_module("query", Linear(b, join_path(p, "query"), H, H, true));
    key = register_module("key", Linear(b, join_path(p, "key"), H, H, true));
    value = register_module("value", Linear(b, join_path(p, "value"), H, H, true));
    const int64_t nh = c.num_attention_heads;
    opts.dropout = c.attention_probs_dropout_prob;
    const std::string counts = std::to_string(nh) + " attention heads";
    check_head_split(*query, join_path(p, "query"), nh, "attention", counts);
    check_head_split(*key, join_path(p, "key"), nh, "attention", counts);
    check_head_split(*value, join_path(p, "value"), nh, "attention", counts);
    if (query->par.group) opts.dropout_stream = uint64_t(query->par.group->rank());  // its own heads' masks
  }
  // x [B,T,H] -> context [B,T,nh*hd] (nh = local heads: all, or H/hd/size when query/key/value are colwise)
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_mask) {
    const int64_t B = x.size(0), T = x.size(1), nh = query->weight.size(0) / hd;
    auto heads = [&](const at::Tensor& y) { return y.view({B, T, nh, hd}).transpose(1, 2); };  // [B,nh,T,hd]
    return attention(heads(query(x)), heads(key(x)), heads(value(x)).contiguous(), key_mask, opts);
  }
  int64_t hd;
  AttentionOptions opts;  // bidirectional; attention_probs_dropout_prob
  Linear query{nullptr}, key{nullptr}, value{nullptr};
};
TORCH_MODULE(BertSelfAttention);

// dense, then LayerNorm(residual + .): HF's BertSelfOutput and BertOutput have this same shape.
struct BertResidualOutputImpl : torch::nn::Module {
  BertResidualOutputImpl(Builder& b, const std::string& p, int64_t in, int64_t H, double eps, double dropout_p)
      : hidden_dropout(dropout_p) {
    dense = register_module("dense", Linear(b, join_path(p, "dense"), in, H, true));
    LayerNorm = register_module("LayerNorm", fme::LayerNorm(b, join_path(p, "LayerNorm"), H, eps));
  }
  // LayerNorm(dense(h) + residual), reporting dense(h) as `point`.
  at::Tensor forward(const at::Tensor& h, const at::Tensor& residual, const BlockCapture& capture, BlockPoint point) {
    at::Tensor y = dense(h);  // [B,T,H]
    capture(point, y);
    return LayerNorm(dropout(y, hidden_dropout) + residual);
  }
  double hidden_dropout;
  Linear dense{nullptr};
  fme::LayerNorm LayerNorm{nullptr};
};
TORCH_MODULE(BertResidualOutput);

struct BertAttentionImpl : torch::nn::Module {
  BertAttentionImpl(Builder& b, const std::string& p, const BertConfig& c) {
    self = register_module("self", BertSelfAttention(b, join_path(p, "self"), c));
    output = register_module("output", BertResidualOutput(b, join_path(p, "output"), c.hidden_size, c.hidden_size, c.layer_norm_eps, c.hidden_dropout_prob));
  }
  BertSelfAttention self{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

struct BertIntermediateImpl : torch::nn::Module {
  BertIntermediateImpl(Builder& b, const std::string& p, const BertConfig& c) : tanh_gelu(c.hidden_act != "gelu") {
    dense = register_module("dense", Linear(b, join_path(p, "dense"), c.hidden_size, c.intermediate_size, true));
  }
  at::Tensor forward(const at::Tensor& x) { return at::gelu(dense(x), tanh_gelu ? "tanh" : "none"); }  // [B,T,I]
  bool tanh_gelu;
  Linear dense{nullptr};
};
TORCH_MODULE(BertIntermediate);

struct BertLayerImpl : torch::nn::Module {
  BertLayerImpl(Builder& b, const std::string& p, const BertConfig& c) {
    attention_ = register_module("attention", BertAttention(b, join_path(p, "attention"), c));
    intermediate = register_module("intermediate", BertIntermediate(b, join_path(p, "intermediate"), c));
    output = register_module("output", BertResidualOutput(b, join_path(p, "output"), c.intermediate_size, c.hidden_size, c.layer_norm_eps, c.hidden_dropout_prob));
  }
  // x [B,T,H] -> [B,T,H]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_mask, const BlockCapture& capture) {
    capture(BlockPoint::ResidPre, x);
    const int64_t hd = attention_->self->hd;
    at::Tensor z = attention_->self(x, key_mask);  // [B,T,nh*hd]
    if (capture.wants(BlockPoint::AttnZ))
      capture(BlockPoint::AttnZ, whole_input(*attention_->output->dense, z).unflatten(-1, {-1, hd}));
    at::Tensor a = attention_->output(z, x, capture, BlockPoint::AttnOut);  // LN(x + attn)
    capture(BlockPoint::ResidMid, a);
    at::Tensor h = intermediate(a);  // [B,T,I]
    if (capture.wants(BlockPoint::MlpPost)) capture(BlockPoint::MlpPost, whole_input(*output->dense, h));
    at::Tensor y = output(h, a, capture, BlockPoint::MlpOut);  // LN(a + mlp)
    capture(BlockPoint::ResidPost, y);
    return y;
  }
  BertAttention attention_{nullptr};
  BertIntermediate intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertLayer);

struct BertEncoderImpl : torch::nn::Module {
  BertEncoderImpl(Builder& b, const std::string& p, const BertConfig& c) {
    layer = register_module("layer", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(BertLayer(b, join_path(p, "layer." + std::to_string(i)), c));
  }
  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(BertEncoder);

struct BertPoolerImpl : torch::nn::Module {
  BertPoolerImpl(Builder& b, const std::string& p, const BertConfig& c) {
    dense = register_module("dense", Linear(b, join_path(p, "dense"), c.hidden_size, c.hidden_size, true));
  }
  at::Tensor forward(const at::Tensor& x) { return at::tanh(dense(x.select(1, 0))); }  // [B,T,H] -> [B,H]
  Linear dense{nullptr};
};
TORCH_MODULE(BertPooler);

// BertForMaskedLM's head, cls.predictions: transform (dense -> act -> LayerNorm), then the decoder, whose
// weight is the word embedding table and whose bias is cls.predictions.bias.
struct BertPredictionTransformImpl : torch::nn::Module {
  BertPredictionTransformImpl(Builder& b, const std::string& p, const BertConfig& c) : tanh_gelu(c.hidden_act != "gelu") {
    dense = register_module("dense", Linear(b, join_path(p, "dense"), c.hidden_size, c.hidden_size, true));
    LayerNorm = register_module("LayerNorm", fme::LayerNorm(b, join_path(p, "LayerNorm"), c.hidden_size, c.layer_norm_eps));
  }
  at::Tensor forward(const at::Tensor& x) { return LayerNorm(at::gelu(dense(x), tanh_gelu ? "tanh" : "none")); }  // [B,T,H]
  bool tanh_gelu;
  Linear dense{nullptr};
  fme::LayerNorm LayerNorm{nullptr};
};
TORCH_MODULE(BertPredictionTransform);

struct BertLMPredictionHeadImpl : torch::nn::Module {
  BertLMPredictionHeadImpl(Builder& b, const std::string& p, const BertConfig& c) {
    transform = register_module("transform", BertPredictionTransform(b, join_path(p, "transform"), c));
    bias = register_parameter("bias", b.param(join_path(p, "bias"), {c.vocab_size}));
  }
  // x [B,T,H], the word embedding table (V, H) -> logits [B,T,V]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& word_embeddings) {
    at::Tensor h = transform(x);
    return vocab_logits(h, in_dtype_of(word_embeddings, h), in_dtype_of(bias, h));
  }
  BertPredictionTransform transform{nullptr};
  at::Tensor bias;  // (V), zeros at initialisation
};
TORCH_MODULE(BertLMPredictionHead);

struct BertOnlyMLMHeadImpl : torch::nn::Module {
  BertOnlyMLMHeadImpl(Builder& b, const std::string& p, const BertConfig& c) {
    predictions = register_module("predictions", BertLMPredictionHead(b, join_path(p, "predictions"), c));
  }
  BertLMPredictionHead predictions{nullptr};
};
TORCH_MODULE(BertOnlyMLMHead);

struct BertModelImpl : torch::nn::Module {
  BertModelImpl(Builder& b, const BertConfig& c) {
    embeddings = register_module("embeddings", BertEmbeddings(b, "embeddings", c));
    encoder = register_module("encoder", BertEncoder(b, "encoder", c));
    if (c.pooler) pooler = register_module("pooler", BertPooler(b, "pooler", c));
    if (c.mlm_head) cls = register_module("cls", BertOnlyMLMHead(b, "cls", c));
  }
  BertEmbeddings embeddings{nullptr};
  BertEncoder encoder{nullptr};
  BertPooler pooler{nullptr};    // absent in BertForMaskedLM
  BertOnlyMLMHead cls{nullptr};  // BertForMaskedLM only
};
TORCH_MODULE(BertModel);

class Bert final : public ModelOf<BertConfig, BertModel> {
 public:
  using ModelOf::ModelOf;

  std::string model_type() const override { return "bert"; }
  int64_t max_positions() const override { return cfg_.max_position_embeddings; }
  int64_t token_types() const override { return cfg_.type_vocab_size; }
  int64_t padding_row() const override { return cfg_.pad_token_id; }

  std::vector<std::pair<std::string, std::string>> tied_parameters() const override {
    if (!cfg_.mlm_head) return {};
    return {{"cls.predictions.decoder.weight", "embeddings.word_embeddings.weight"},
            {"cls.predictions.decoder.bias", "cls.predictions.bias"}};
  }
  std::vector<std::pair<std::string, double>> dropout_probabilities() const override {
    return {{"hidden_dropout_prob", cfg_.hidden_dropout_prob}, {"attention_probs_dropout_prob", cfg_.attention_probs_dropout_prob}};
  }
  std::string checkpoint_name(const std::string& param) const override {
    if (!cfg_.mlm_head || param.rfind("cls.", 0) == 0) return param;
    return "bert." + param;  // BertForMaskedLM holds the encoder as .bert
  }

  void forward(const Batch& batch, const Capture& capture) override {
    c10::InferenceMode guard;
    at::Tensor x = blocks(batch, capture, capture.last_block(num_layers()));  // [B,T,H]
    if (capture.wants("pooler_output")) capture("pooler_output", net_->pooler(x));
  }

  at::Tensor logits(const Batch& batch, const Capture& capture) override {
    if (!net_->cls) throw ConfigError("bert: this model has no masked-LM head (cls.predictions): it was built as BertModel");
    const auto& words = *net_->embeddings->word_embeddings;
    if (words.par.split != Split::None) throw ConfigError("bert: the word embeddings are split over the mesh; MLM logits need them whole");
    at::Tensor x = blocks(batch, capture, num_layers() - 1);  // [B,T,H]
    if (capture.wants("pooler_output")) capture("pooler_output", net_->pooler(x));
    return net_->cls->predictions(x, words.weight);  // [B,T,V]
  }

 private:
  // Embeddings, then layers 0..last: the hidden states after layer `last`.
  at::Tensor blocks(const Batch& batch, const Capture& capture, int64_t last) {
    const int64_t T = batch.input_ids.size(1);
    if (T > cfg_.max_position_embeddings)
      throw ShapeError("bert: sequence of " + std::to_string(T) + " tokens exceeds max_position_embeddings " +
                       std::to_string(cfg_.max_position_embeddings));
    at::Tensor types = batch.token_type_ids.defined() ? batch.token_type_ids : at::zeros_like(batch.input_ids);
    at::Tensor x = net_->embeddings(batch.input_ids, types, position_ids(batch), compute_dtype());  // [B,T,H]
    at::Tensor key_mask = attention_keys(batch);                // [B,T]
    for (int64_t i = 0; i <= last; ++i)
      x = net_->encoder->layer->ptr<BertLayerImpl>(i)->forward(x, key_mask, BlockCapture{capture, i});
    return x;
  }

 protected:
  std::vector<HookPoint> model_points() const override {
    if (!cfg_.pooler) return {};
    return {{"pooler_output", {cfg_.hidden_size}, cfg_.num_hidden_layers - 1, /*per_token=*/false}};
  }
};

}  // namespace

std::unique_ptr<Model> make_bert(const BertConfig& config, Builder& b) { return std::make_unique<Bert>(config, b); }

}  // namespace fme
