// Mixed precision's compute copies (models/compute_copies.h): a forward and backward that compute with the
// kept bf16 copies give the logits and gradients that casting every weight at every use gives, bit for bit,
// on tied and untied models of each family; a master written since is copied again before it is used.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "models/compute_copies.h"
#include "models/padded_batch.h"
#include "pipelines/prepare/prepare.h"
#include "test_paths.h"

namespace fme {
namespace {

struct Pass {
  at::Tensor logits;
  std::vector<at::Tensor> grads;  // per parameter, fp32 (undefined: none)
};

// One forward and backward of a fixed scalar of the logits; the gradient of each master summed from its own
// and its copy's parts, as the training loop does.
Pass run(Model& model, const Batch& batch, std::vector<at::Tensor>& masters, ComputeCopies* copies, const std::vector<at::Tensor>& copy_of) {
  for (at::Tensor& m : masters) m.mutable_grad() = at::Tensor();
  for (at::Tensor c : copy_of)  // a handle: the same tensor
    if (c.defined()) c.mutable_grad() = at::Tensor();
  Pass out;
  {
    const ComputeCopyScope scope(copies);
    out.logits = model.logits(batch);  // [B,T,V] bf16
  }
  (out.logits.to(at::kFloat).pow(2).mean() * 1000).backward();
  for (size_t i = 0; i < masters.size(); ++i) {
    at::Tensor g = masters[i].grad();
    const at::Tensor c = copy_of.empty() || !copy_of[i].defined() ? at::Tensor() : copy_of[i].grad();
    if (c.defined()) g = g.defined() ? g + c : c.to(at::kFloat);
    out.grads.push_back(g.defined() ? g.clone() : g);
  }
  return out;
}

class ComputeCopiesTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ComputeCopiesTest, EqualACastAtEveryUseBitForBit) {
  PrepareOptions o;
  o.model_dir = test::shared("models/" + GetParam());
  o.lm_head = true;
  o.optimizer = "none";
  Prepared prep = make_module_opt(o, nullptr);
  Model& model = *prep.model;
  model.set_compute_dtype(at::kBFloat16);
  std::vector<at::Tensor> masters;
  for (auto& [name, t] : model.named_parameters()) {
    ASSERT_EQ(t.scalar_type(), at::kFloat) << name;
    t.set_requires_grad(true);
    masters.push_back(t);
  }
  at::manual_seed(7);
  Batch batch;
  batch.input_ids = at::randint(0, model.vocab_size(), {2, 9}, at::kLong);
  batch.attention_mask = at::ones({2, 9}, at::kLong);
  batch.attention_mask[1].narrow(0, 6, 3).fill_(0);  // padding too
  if (model.token_types() > 0) batch.token_type_ids = at::zeros({2, 9}, at::kLong);

  ComputeCopies copies(at::kBFloat16);
  copies.add(masters);
  const Pass cast = run(model, batch, masters, nullptr, {});
  EXPECT_EQ(copies.made(), 0u);
  (void)run(model, batch, masters, &copies, {});  // makes the copies: the weights the pass multiplies with
  const std::vector<at::Tensor> copy_of = copies.copies_of(masters);
  size_t with_copy = 0;
  for (const at::Tensor& c : copy_of) with_copy += c.defined() && c.scalar_type() == at::kBFloat16 && c.requires_grad();
  EXPECT_EQ(with_copy, copies.made());
  EXPECT_GE(with_copy, masters.size() / 2);
  // The input embedding is looked up in fp32 (its rows widen exactly): a copy only when tied to the head.
  const bool tied = GetParam() != "llama-tiny";
  EXPECT_EQ(copy_of[0].defined(), tied) << model.named_parameters()[0].first;

  const Pass kept = run(model, batch, masters, &copies, copy_of);
  ASSERT_TRUE(at::equal(cast.logits, kept.logits));
  for (size_t i = 0; i < masters.size(); ++i) {
    ASSERT_EQ(cast.grads[i].defined(), kept.grads[i].defined()) << i;
    if (cast.grads[i].defined()) {
      EXPECT_TRUE(at::equal(cast.grads[i], kept.grads[i])) << model.named_parameters()[i].first;
    }
  }

  // A master written through ATen (as a checkpoint restore writes it): its copy is made again at its next use.
  {
    at::NoGradGuard no_grad;
    for (at::Tensor& m : masters) m.mul_(1.5);
  }
  const Pass cast2 = run(model, batch, masters, nullptr, {});
  const Pass kept2 = run(model, batch, masters, &copies, copy_of);
  EXPECT_FALSE(at::equal(cast.logits, cast2.logits));
  EXPECT_TRUE(at::equal(cast2.logits, kept2.logits));
  for (size_t i = 0; i < masters.size(); ++i)
    if (copy_of[i].defined()) {
      EXPECT_TRUE(at::equal(copy_of[i], masters[i].to(at::kBFloat16))) << i;
    }
}

INSTANTIATE_TEST_SUITE_P(Families, ComputeCopiesTest, ::testing::Values("qwen2-tiny", "bert-tiny", "llama-tiny", "gemma2-tiny", "gpt2-tiny"),
                         [](const auto& info) { return std::string(info.param).substr(0, info.param.find('-')); });

// The fold of a copy's bf16 gradient into its master's fp32 one gives ATen's add_ bit for bit: over pieces and
// threads with a tail (the kernel), and for a strided gradient (ATen's own path).
TEST(ComputeCopies, AddCopyGradientEqualsATenAdd) {
  at::manual_seed(5);
  for (const int64_t n : {int64_t(1), int64_t(70001), int64_t(3) << 16}) {
    const at::Tensor master = at::randn({n}) * 1e-3, copy = (at::randn({n}) * 100).to(at::kBFloat16);
    at::Tensor got = master.clone();
    add_copy_gradient(got, copy);
    EXPECT_TRUE(got.equal(master.clone().add_(copy))) << n;
    EXPECT_FALSE(got.equal(master)) << n;
  }
  const at::Tensor master = at::randn({40, 30}), copy = at::randn({30, 40}).to(at::kBFloat16).t();
  at::Tensor got = master.clone();
  add_copy_gradient(got, copy);
  EXPECT_TRUE(got.equal(master.clone().add_(copy)));
}

}  // namespace
}  // namespace fme
