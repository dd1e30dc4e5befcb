// Tests of plans/resolve: matching (the 24-match BERT case, first match wins, plans in order), partition
// specs and local shapes, LoRA with TP, freeze/unfreeze/cast, every error, unmatched-pattern reporting,
// the mesh, and a performance bound that catches quadratic work.
#include <gtest/gtest.h>

#include <chrono>
#include <map>

#include "plans/resolve.h"
#include "plans_test_helpers.h"
#include "util/error.h"

namespace fme::plans {
namespace {

using testing::bert_modules;
using testing::mesh_tp;

using Dims = std::vector<int64_t>;
using Spec = std::vector<std::optional<std::string>>;
const std::optional<std::string> kNone = std::nullopt;
const std::optional<std::string> kTp = std::string("tp");

const ParamRow& param_of(const PlanTable& t, const std::string& path, const std::string& name) {
  const ModuleRow* m = t.find(path);
  if (!m) throw std::runtime_error("no module " + path);
  const ParamRow* p = m->param(name);
  if (!p) throw std::runtime_error("no param " + path + "." + name);
  return *p;
}

template <typename E>
std::string error_of(const std::vector<ModuleDesc>& modules, const std::string& plan_text, const Mesh& mesh) {
  try {
    resolve(modules, parse_plans(plan_text, "t.plan"), mesh);
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error for plan:\n" << plan_text;
  return "";
}

TEST(ResolveBert, TpPlanMatchesExactly24InFourLayersSixPerLayer) {
  PlanTable t = resolve(bert_modules(4), load_plans("builtin:bert-tp"), mesh_tp(2));
  std::map<std::string, int> per_layer;
  std::vector<std::string> matched;
  for (const auto& m : t.modules) {
    ASSERT_EQ(m.matches.size(), 1u);
    if (!m.matches[0]) continue;
    matched.push_back(m.path);
    ASSERT_EQ(m.path.rfind("encoder.layer.", 0), 0u) << m.path;
    per_layer[m.path.substr(0, m.path.find('.', 14))]++;
  }
  EXPECT_EQ(matched.size(), 24u);
  ASSERT_EQ(per_layer.size(), 4u);
  for (const auto& [layer, n] : per_layer) EXPECT_EQ(n, 6) << layer;
  std::vector<std::string> layer0(matched.begin(), matched.begin() + 6);
  EXPECT_EQ(layer0, (std::vector<std::string>{
                        "encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.key",
                        "encoder.layer.0.attention.self.value", "encoder.layer.0.attention.output.dense",
                        "encoder.layer.0.intermediate.dense", "encoder.layer.0.output.dense"}));
  // `*.output.dense` catches the attention's output projection too, and makes it rowwise.
  const auto& m = *t.find("encoder.layer.2.attention.output.dense")->matches[0];
  EXPECT_EQ(m.pattern, "*.output.dense");
  EXPECT_EQ(m.transform.kind, TransformKind::Rowwise);
  EXPECT_EQ(m.plan, "tp");
  EXPECT_FALSE(t.find("pooler.dense")->transformed());
  EXPECT_FALSE(t.find("encoder.layer.0.output.LayerNorm")->transformed());
  EXPECT_TRUE(t.unmatched.empty());
}

TEST(ResolveBert, PartitionSpecsAndLocalShapesTp2) {
  PlanTable t = resolve(bert_modules(4), load_plans("builtin:bert-tp"), mesh_tp(2));
  const ParamRow& qw = param_of(t, "encoder.layer.0.attention.self.query", "weight");
  EXPECT_EQ(qw.name, "encoder.layer.0.attention.self.query.weight");
  EXPECT_EQ(qw.global_shape, (Dims{768, 768}));
  EXPECT_EQ(qw.local_shape, (Dims{384, 768}));
  EXPECT_EQ(qw.spec.dims, (Spec{kTp, kNone}));
  EXPECT_EQ(qw.spec.to_string(), "P('tp', None)");
  const ParamRow& qb = param_of(t, "encoder.layer.0.attention.self.query", "bias");
  EXPECT_EQ(qb.spec.to_string(), "P('tp')");
  EXPECT_EQ(qb.local_shape, (Dims{384}));

  const ParamRow& ow = param_of(t, "encoder.layer.3.output.dense", "weight");
  EXPECT_EQ(ow.global_shape, (Dims{768, 3072}));
  EXPECT_EQ(ow.local_shape, (Dims{768, 1536}));
  EXPECT_EQ(ow.spec.to_string(), "P(None, 'tp')");
  const ParamRow& ob = param_of(t, "encoder.layer.3.output.dense", "bias");
  EXPECT_TRUE(ob.spec.replicated());
  EXPECT_EQ(ob.spec.to_string(), "P(None)");
  EXPECT_EQ(ob.local_shape, (Dims{768}));

  const ParamRow& iw = param_of(t, "encoder.layer.1.intermediate.dense", "weight");
  EXPECT_EQ(iw.local_shape, (Dims{1536, 768}));
  const ParamRow& aow = param_of(t, "encoder.layer.1.attention.output.dense", "weight");
  EXPECT_EQ(aow.local_shape, (Dims{768, 384}));

  // Untouched modules keep global shapes and are replicated.
  const ParamRow& ln = param_of(t, "encoder.layer.0.output.LayerNorm", "weight");
  EXPECT_EQ(ln.local_shape, (Dims{768}));
  EXPECT_TRUE(ln.spec.replicated());
  EXPECT_EQ(param_of(t, "pooler.dense", "weight").spec.to_string(), "P(None, None)");

  // Offsets: rank r holds rows [r*384, (r+1)*384) of the query weight, columns of output.dense.
  EXPECT_EQ(qw.shard_offset(0, t.mesh, 0), 0);
  EXPECT_EQ(qw.shard_offset(0, t.mesh, 1), 384);
  EXPECT_EQ(qw.shard_offset(1, t.mesh, 1), 0);
  EXPECT_EQ(ow.shard_offset(1, t.mesh, 1), 1536);
  EXPECT_EQ(ob.shard_offset(0, t.mesh, 1), 0);
  EXPECT_THROW(qw.shard_offset(0, t.mesh, 2), ConfigError);
}

TEST(ResolveBert, TwoDimensionalMeshUsesTheTpCoordinate) {
  Mesh mesh = Mesh::parse("dp=2, tp=2");
  PlanTable t = resolve(bert_modules(1), load_plans("builtin:bert-tp"), mesh);
  const ParamRow& qw = param_of(t, "encoder.layer.0.attention.self.query", "weight");
  EXPECT_EQ(qw.local_shape, (Dims{384, 768}));  // dp does not shard this parameter
  EXPECT_EQ(qw.shard_offset(0, mesh, 0), 0);    // (dp=0, tp=0)
  EXPECT_EQ(qw.shard_offset(0, mesh, 1), 384);  // (dp=0, tp=1)
  EXPECT_EQ(qw.shard_offset(0, mesh, 2), 0);    // (dp=1, tp=0)
  EXPECT_EQ(qw.shard_offset(0, mesh, 3), 384);  // (dp=1, tp=1)
}

TEST(ResolveBert, MeshAxisOfSizeOneKeepsGlobalShapes) {
  PlanTable t = resolve(bert_modules(1), load_plans("builtin:bert-tp"), mesh_tp(1));
  const ParamRow& qw = param_of(t, "encoder.layer.0.attention.self.query", "weight");
  EXPECT_EQ(qw.spec.to_string(), "P('tp', None)");
  EXPECT_EQ(qw.local_shape, qw.global_shape);
  EXPECT_EQ(qw.shard_offset(0, t.mesh, 0), 0);
}

TEST(ResolveEmbedding, ColwiseShardsHiddenRowwiseShardsVocab) {
  PlanTable t = resolve(bert_modules(1),
                        parse_plans("plan emb\nembeddings.word_embeddings rowwise(tp)\n"
                                    "embeddings.position_embeddings colwise(tp)\n",
                                    "t"),
                        mesh_tp(2));
  const ParamRow& w = param_of(t, "embeddings.word_embeddings", "weight");
  EXPECT_EQ(w.spec.to_string(), "P('tp', None)");
  EXPECT_EQ(w.local_shape, (Dims{15261, 768}));
  EXPECT_EQ(w.shard_offset(0, t.mesh, 1), 15261);
  const ParamRow& p = param_of(t, "embeddings.position_embeddings", "weight");
  EXPECT_EQ(p.spec.to_string(), "P(None, 'tp')");
  EXPECT_EQ(p.local_shape, (Dims{512, 384}));
  EXPECT_EQ(t.find("embeddings.word_embeddings")->sharding, Sharding::Rowwise);
  EXPECT_EQ(t.find("embeddings.position_embeddings")->sharding, Sharding::Colwise);
}

TEST(ResolveMatching, FirstMatchWinsWithinAPlan) {
  PlanTable t = resolve(bert_modules(1),
                        parse_plans("plan p\n*.self.query freeze\n*.attention.* cast(bf16)\n*.query cast(fp16)\n", "t"),
                        mesh_tp(2));
  const ModuleRow* q = t.find("encoder.layer.0.attention.self.query");
  ASSERT_TRUE(q->matches[0]);
  EXPECT_EQ(q->matches[0]->line, 2);
  EXPECT_FALSE(q->param("weight")->trainable);
  EXPECT_EQ(q->param("weight")->dtype, "fp32");  // the later cast rules did not apply
  const ModuleRow* k = t.find("encoder.layer.0.attention.self.key");
  EXPECT_EQ(k->matches[0]->line, 3);
  EXPECT_EQ(k->param("weight")->dtype, "bf16");
  EXPECT_TRUE(k->param("weight")->trainable);
  // `*.query` only ever loses to line 2, so it is reported as matching nothing.
  ASSERT_EQ(t.unmatched.size(), 1u);
  EXPECT_EQ(t.unmatched[0], "plan 'p' line 4: pattern '*.query' matched no module");
}

TEST(ResolveMatching, LaterPlansSeeEarlierResults) {
  PlanTable t = resolve(bert_modules(2),
                        parse_plans("plan a\nencoder.layer.0.* freeze\n"
                                    "plan b\n*.LayerNorm unfreeze\n*.intermediate.dense cast(bf16)\n"
                                    "plan c\n*.dense cast(fp16)\n",
                                    "t"),
                        mesh_tp(2));
  EXPECT_EQ(t.plan_names, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(param_of(t, "encoder.layer.0.attention.self.query", "weight").trainable);
  EXPECT_TRUE(param_of(t, "encoder.layer.0.output.LayerNorm", "weight").trainable);   // a froze, b unfroze
  EXPECT_TRUE(param_of(t, "encoder.layer.1.attention.self.query", "weight").trainable);
  EXPECT_EQ(param_of(t, "encoder.layer.1.intermediate.dense", "weight").dtype, "fp16");  // b then c
  EXPECT_EQ(param_of(t, "encoder.layer.1.intermediate.dense", "bias").dtype, "fp16");
  const ModuleRow* m = t.find("encoder.layer.0.output.LayerNorm");
  ASSERT_EQ(m->matches.size(), 3u);
  EXPECT_TRUE(m->matches[0] && m->matches[1]);
  EXPECT_FALSE(m->matches[2]);  // "*.dense" does not match "...LayerNorm"
}

TEST(ResolveLora, AddsParamsFreezesBaseAndFollowsTpSharding) {
  auto plans = load_plans("builtin:bert-tp");
  auto lora = parse_plans("plan adapters\n*.attention.self.query lora(r=8, alpha=16)\n*.output.dense lora(r=8, alpha=16)\n", "t");
  plans.insert(plans.end(), lora.begin(), lora.end());
  PlanTable t = resolve(bert_modules(4), plans, mesh_tp(2));

  const ModuleRow* q = t.find("encoder.layer.0.attention.self.query");
  ASSERT_EQ(q->params.size(), 4u);  // weight, bias, lora_A, lora_B
  EXPECT_EQ(*q->lora_r, 8);
  EXPECT_DOUBLE_EQ(q->lora_alpha, 16);
  EXPECT_FALSE(q->param("weight")->trainable);
  EXPECT_FALSE(q->param("bias")->trainable);
  const ParamRow& a = *q->param("lora_A");
  const ParamRow& b = *q->param("lora_B");
  EXPECT_EQ(a.name, "encoder.layer.0.attention.self.query.lora_A");
  EXPECT_EQ(b.name, "encoder.layer.0.attention.self.query.lora_B");
  EXPECT_TRUE(a.added_by_lora && b.added_by_lora && a.trainable && b.trainable);
  EXPECT_FALSE(q->param("weight")->added_by_lora);
  EXPECT_EQ(a.global_shape, (Dims{8, 768}));  // A [r, in]
  EXPECT_EQ(b.global_shape, (Dims{768, 8}));  // B [out, r]
  // colwise base: B split like the weight's rows, A replicated.
  EXPECT_EQ(a.spec.to_string(), "P(None, None)");
  EXPECT_EQ(b.spec.to_string(), "P('tp', None)");
  EXPECT_EQ(b.local_shape, (Dims{384, 8}));
  EXPECT_EQ(b.dtype, "fp32");

  // rowwise base: A split like the weight's columns, B replicated.
  const ModuleRow* o = t.find("encoder.layer.0.output.dense");
  EXPECT_EQ(o->param("lora_A")->global_shape, (Dims{8, 3072}));
  EXPECT_EQ(o->param("lora_A")->spec.to_string(), "P(None, 'tp')");
  EXPECT_EQ(o->param("lora_A")->local_shape, (Dims{8, 1536}));
  EXPECT_EQ(o->param("lora_A")->shard_offset(1, t.mesh, 1), 1536);
  EXPECT_EQ(o->param("lora_B")->spec.to_string(), "P(None, None)");
  EXPECT_EQ(o->param("lora_B")->global_shape, (Dims{768, 8}));

  // A module without LoRA keeps its trainable base.
  EXPECT_TRUE(param_of(t, "encoder.layer.0.attention.self.key", "weight").trainable);
  size_t added = 0;
  for (const ParamRow* p : t.all_params()) added += p->added_by_lora;
  EXPECT_EQ(added, 4u * 3u * 2u);  // 4 layers x (query, attention.output.dense, output.dense) x (A, B)
}

TEST(ResolveLora, TpAfterLoraGivesTheSameSpecs) {
  auto plans = parse_plans("plan adapters\n*.query lora(r=4, alpha=8)\n*.output.dense lora(r=4, alpha=8)\n", "t");
  auto tp = load_plans("builtin:bert-tp");
  plans.insert(plans.end(), tp.begin(), tp.end());
  PlanTable t = resolve(bert_modules(1), plans, mesh_tp(2));
  EXPECT_EQ(param_of(t, "encoder.layer.0.attention.self.query", "lora_B").spec.to_string(), "P('tp', None)");
  EXPECT_EQ(param_of(t, "encoder.layer.0.attention.self.query", "lora_A").spec.to_string(), "P(None, None)");
  EXPECT_EQ(param_of(t, "encoder.layer.0.output.dense", "lora_A").spec.to_string(), "P(None, 'tp')");
  EXPECT_EQ(param_of(t, "encoder.layer.0.output.dense", "lora_A").local_shape, (Dims{4, 1536}));
  EXPECT_EQ(param_of(t, "encoder.layer.0.output.dense", "lora_B").spec.to_string(), "P(None, None)");
}

TEST(ResolveLora, LaterFreezeAndCastReachLoraParams) {
  PlanTable t = resolve(bert_modules(1),
                        parse_plans("plan a\n*.query lora(r=2, alpha=4)\nplan b\n*.query cast(bf16)\nplan c\n*.query unfreeze\n", "t"),
                        mesh_tp(2));
  const ModuleRow* q = t.find("encoder.layer.0.attention.self.query");
  for (const auto& p : q->params) {
    EXPECT_EQ(p.dtype, "bf16") << p.name;
    EXPECT_TRUE(p.trainable) << p.name;
  }
}

TEST(ResolveTransforms, FreezeUnfreezeCastAllParams) {
  auto modules = bert_modules(1);
  modules.back().params[1].trainable = false;  // pooler.dense.bias starts frozen
  PlanTable t = resolve(modules, parse_plans("plan p\nembeddings.* freeze\npooler.dense unfreeze\n*LayerNorm cast(bf16)\n", "t"),
                        mesh_tp(2));
  EXPECT_FALSE(param_of(t, "embeddings.word_embeddings", "weight").trainable);
  EXPECT_FALSE(param_of(t, "embeddings.LayerNorm", "bias").trainable);  // line 2 wins over line 4
  EXPECT_EQ(param_of(t, "embeddings.LayerNorm", "bias").dtype, "fp32");
  EXPECT_TRUE(param_of(t, "pooler.dense", "bias").trainable);
  EXPECT_EQ(param_of(t, "encoder.layer.0.output.LayerNorm", "weight").dtype, "bf16");
  EXPECT_EQ(param_of(t, "encoder.layer.0.output.LayerNorm", "bias").dtype, "bf16");
  EXPECT_TRUE(param_of(t, "encoder.layer.0.output.LayerNorm", "bias").trainable);
  EXPECT_EQ(param_of(t, "encoder.layer.0.attention.self.query", "weight").dtype, "fp32");
}

TEST(ResolveQwen2, TpPlanSpecs) {
  PlanTable t = resolve(testing::qwen2_modules(2), load_plans("builtin:qwen2-tp"), mesh_tp(2));
  size_t n = 0;
  for (const auto& m : t.modules) n += m.transformed();
  EXPECT_EQ(n, 14u);
  EXPECT_EQ(param_of(t, "model.layers.1.self_attn.k_proj", "weight").local_shape, (Dims{64, 896}));
  EXPECT_EQ(param_of(t, "model.layers.1.self_attn.k_proj", "bias").spec.to_string(), "P('tp')");
  EXPECT_EQ(param_of(t, "model.layers.1.mlp.down_proj", "weight").local_shape, (Dims{896, 2432}));
  EXPECT_EQ(param_of(t, "model.layers.1.self_attn.o_proj", "weight").spec.to_string(), "P(None, 'tp')");
  EXPECT_FALSE(t.find("lm_head")->transformed());
  EXPECT_TRUE(t.unmatched.empty());
}

// GPT-2's Conv1D modules (weight [in, out]) with the fused c_attn [H, 3H]: colwise splits dim 1 within each
// of the three parts, and the shard offset is the offset within a part.
TEST(ResolveGpt2, FusedConv1DSplitsEachPart) {
  const int64_t H = 768;
  auto conv = [](const std::string& path, int64_t in, int64_t out, int64_t parts = 1) {
    return ModuleDesc{path, "Conv1D", {testing::param("weight", {in, out}), testing::param("bias", {out})}, parts};
  };
  std::vector<ModuleDesc> mods{conv("transformer.h.0.attn.c_attn", H, 3 * H, 3), conv("transformer.h.0.attn.c_proj", H, H),
                               conv("transformer.h.0.mlp.c_fc", H, 4 * H), conv("transformer.h.0.mlp.c_proj", 4 * H, H)};
  PlanTable t = resolve(mods, load_plans("builtin:gpt2-tp"), mesh_tp(4));
  const ParamRow& w = param_of(t, "transformer.h.0.attn.c_attn", "weight");
  EXPECT_EQ(w.spec.to_string(), "P(None, 'tp')");
  EXPECT_EQ(w.local_shape, (Dims{H, 3 * H / 4}));
  EXPECT_EQ(w.parts, 3);
  EXPECT_EQ(w.shard_offset(1, t.mesh, 2), 2 * H / 4);  // rank 2 holds q, k, v columns [384, 576) of each part
  const ParamRow& b = param_of(t, "transformer.h.0.attn.c_attn", "bias");
  EXPECT_EQ(b.parts, 3);
  EXPECT_EQ(b.local_shape, (Dims{3 * H / 4}));
  const ParamRow& proj = param_of(t, "transformer.h.0.attn.c_proj", "weight");
  EXPECT_EQ(proj.spec.to_string(), "P('tp', None)");  // rowwise: [in, out] splits dim 0
  EXPECT_EQ(proj.parts, 1);
  EXPECT_EQ(param_of(t, "transformer.h.0.attn.c_proj", "bias").spec.to_string(), "P(None)");
  EXPECT_EQ(param_of(t, "transformer.h.0.mlp.c_fc", "weight").local_shape, (Dims{H, H}));
  EXPECT_TRUE(t.unmatched.empty());
  // LoRA on the fused module: A [r, in], B [out, r] as PEFT's fan_in_fan_out adapters; B splits per part.
  PlanTable l = resolve(mods, parse_plans("plan l\n*.c_attn lora(r=8, alpha=16)\n", "l.plan"), Mesh{});
  EXPECT_EQ(param_of(l, "transformer.h.0.attn.c_attn", "lora_A").global_shape, (Dims{8, H}));
  EXPECT_EQ(param_of(l, "transformer.h.0.attn.c_attn", "lora_B").global_shape, (Dims{3 * H, 8}));
  // 12 outputs in 3 parts of 4: tp=2 splits each part, tp=3 divides the 12 but would cut the parts.
  const std::vector<ModuleDesc> small{conv("a.c_attn", 8, 12, 3)};
  const auto col = parse_plans("plan p\n*.c_attn colwise(tp)\n", "p.plan");
  EXPECT_NO_THROW(resolve(small, col, mesh_tp(2)));
  try {
    resolve(small, col, mesh_tp(3));
    FAIL() << "no error";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("in 3 fused parts"), std::string::npos) << e.what();
  }
}

// ---- errors ----------------------------------------------------------------------------------------

TEST(ResolveErrors, TransformOnUnsupportedModuleType) {
  EXPECT_EQ(error_of<ConfigError>(bert_modules(1), "# x\nplan tp\n*.attention.output.* colwise(tp)\n", mesh_tp(2)),
            "plan 'tp' line 3: colwise(tp) matched 'encoder.layer.0.attention.output.LayerNorm', a LayerNorm; "
            "colwise applies to Linear, Conv1D and Embedding");
  EXPECT_EQ(error_of<ConfigError>(bert_modules(1), "plan a\nembeddings.* lora(r=4, alpha=8)\n", mesh_tp(2)),
            "plan 'a' line 2: lora(r=4, alpha=8) matched 'embeddings.word_embeddings', an Embedding; lora applies to Linear and Conv1D");
  std::vector<ModuleDesc> rms = testing::qwen2_modules(1);
  EXPECT_NE(error_of<ConfigError>(rms, "plan a\n*norm rowwise(tp)\n", mesh_tp(2))
                .find("matched 'model.layers.0.input_layernorm', a RMSNorm; rowwise applies to Linear, Conv1D and Embedding"),
            std::string::npos);
}

TEST(ResolveErrors, AxisMissingFromMesh) {
  std::string msg = error_of<ConfigError>(bert_modules(1), "plan tp\n*.query colwise(tp)\n", Mesh::parse("dp=2"));
  EXPECT_EQ(msg, "plan 'tp' line 2: colwise(tp) names mesh axis 'tp', but the mesh has axes: dp=2");
  // Even a rule that matches nothing is checked.
  msg = error_of<ConfigError>(bert_modules(1), "plan tp\n*.nothing rowwise(model)\n", Mesh::parse("dp=2,tp=4"));
  EXPECT_EQ(msg, "plan 'tp' line 2: rowwise(model) names mesh axis 'model', but the mesh has axes: dp=2,tp=4");
  msg = error_of<ConfigError>(bert_modules(1), "plan tp\n*.query colwise(tp)\n", Mesh{});
  EXPECT_EQ(msg, "plan 'tp' line 2: colwise(tp) names mesh axis 'tp', but the mesh has no axes");
}

TEST(ResolveErrors, NonDivisibleDim) {
  EXPECT_EQ(error_of<ShapeError>(bert_modules(1), "plan tp\n*.query colwise(tp)\n", mesh_tp(5)),
            "plan 'tp' line 2: colwise(tp) on 'encoder.layer.0.attention.self.query': parameter "
            "'encoder.layer.0.attention.self.query.weight' dim 0 has size 768, which mesh axis 'tp' of size 5 does not divide");
  // 30522 is even but not a multiple of 4.
  std::string msg = error_of<ShapeError>(bert_modules(1), "plan tp\nembeddings.word_embeddings rowwise(tp)\n", mesh_tp(4));
  EXPECT_NE(msg.find("parameter 'embeddings.word_embeddings.weight' dim 0 has size 30522, which mesh axis 'tp' of size 4"),
            std::string::npos)
      << msg;
}

TEST(ResolveErrors, ShardingTwiceAndLoraTwice) {
  std::string msg = error_of<ConfigError>(bert_modules(1), "plan a\n*.query colwise(tp)\nplan b\n*.query rowwise(tp)\n", mesh_tp(2));
  EXPECT_EQ(msg, "plan 'b' line 4: rowwise(tp) matched 'encoder.layer.0.attention.self.query', which plan 'a' line 2 "
                 "(colwise(tp)) already shards; a module can be sharded by one plan only");
  msg = error_of<ConfigError>(bert_modules(1), "plan a\n*.query lora(r=2, alpha=2)\nplan b\n*.query lora(r=4, alpha=2)\n", mesh_tp(2));
  EXPECT_NE(msg.find("which already has LoRA (r=2)"), std::string::npos) << msg;
}

TEST(ResolveErrors, BadInputs) {
  auto plans = load_plans("builtin:bert-tp");
  auto twice = plans;
  twice.insert(twice.end(), plans.begin(), plans.end());
  EXPECT_THROW(resolve(bert_modules(1), twice, mesh_tp(2)), ConfigError);  // plan 'tp' twice

  auto dup = bert_modules(1);
  dup.push_back(dup.front());
  EXPECT_THROW(resolve(dup, plans, mesh_tp(2)), ConfigError);

  auto bad = bert_modules(1);
  for (auto& m : bad)
    if (m.path == "encoder.layer.0.attention.self.key") m.params[0].shape = {768};
  try {
    resolve(bad, plans, mesh_tp(2));
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("parameter 'encoder.layer.0.attention.self.key.weight' has shape [768]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(resolve(bert_modules(1), plans, Mesh{{{"tp", 0}}}), ConfigError);
  EXPECT_THROW(resolve(bert_modules(1), plans, Mesh{{{"tp", 2}, {"tp", 2}}}), ConfigError);
}

TEST(ResolveUnmatched, ReportedNotThrown) {
  PlanTable t = resolve(bert_modules(2),
                        parse_plans("plan tp\n*.attention.self.query colwise(tp)\n*.q_proj colwise(tp)\n"
                                    "plan adapters\n*.o_proj lora(r=8, alpha=16)\n",
                                    "t"),
                        mesh_tp(2));
  EXPECT_EQ(t.unmatched, (std::vector<std::string>{"plan 'tp' line 3: pattern '*.q_proj' matched no module",
                                                   "plan 'adapters' line 5: pattern '*.o_proj' matched no module"}));
  EXPECT_TRUE(t.find("encoder.layer.1.attention.self.query")->transformed());
}

// ---- mesh (parsing and coordinates: mesh_test.cpp) -------------------------------------------------

TEST(MeshTest, ShardOffsetOfAnAxisTheMeshLacksIsAnError) {
  PlanTable t = resolve(bert_modules(1), parse_plans("plan tp\n*.query colwise(tp)\n", "tp.plan"), Mesh::parse("tp=2"));
  const ParamRow* qw = t.find("encoder.layer.0.attention.self.query")->param("weight");
  ASSERT_NE(qw, nullptr);
  EXPECT_EQ(qw->shard_offset(0, Mesh::parse("tp=2"), 1), qw->local_shape[0]);
  try {
    qw->shard_offset(0, Mesh::parse("dp=2"), 1);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "parameter 'encoder.layer.0.attention.self.query.weight' is sharded over mesh axis 'tp', but the mesh has axes: dp=2");
  }
}

// ---- performance -----------------------------------------------------------------------------------

TEST(ResolvePerformance, ThreePlansOverTenThousandModulesIsFast) {
  auto modules = bert_modules(1250, 64, 256, 1024);  // 8 * 1250 + 5 = 10005 modules
  ASSERT_GE(modules.size(), 10000u);
  auto plans = load_plans("builtin:bert-tp");
  for (auto& p : parse_plans("plan adapters\n*.attention.self.query lora(r=8, alpha=16)\n*.attention.self.value lora(r=8, alpha=16)\n"
                             "plan rest\nembeddings.* freeze\n*.LayerNorm cast(fp32)\n*.intermediate.* cast(bf16)\n",
                             "t"))
    plans.push_back(p);
  auto start = std::chrono::steady_clock::now();
  PlanTable t = resolve(modules, plans, Mesh::parse("dp=2,tp=2"));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(t.modules.size(), modules.size());
  size_t tp = 0;
  for (const auto& m : t.modules) tp += bool(m.matches[0]);
  EXPECT_EQ(tp, 6u * 1250u);
  // Generous: a linear pass takes milliseconds; a rebuild per match (quadratic) would take far longer.
  EXPECT_LT(seconds, 1.0) << "resolve took " << seconds << " s";
}

}  // namespace
}  // namespace fme::plans
