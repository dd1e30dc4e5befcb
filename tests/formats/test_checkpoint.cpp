// Tests of formats/checkpoint: the qwen2-tiny weights split into two shards + an index must read the
// same as the single file, and inconsistent indexes are refused.
#include <gtest/gtest.h>

#include <cstring>

#include "formats/checkpoint.h"
#include "test_helpers.h"
#include "util/json.h"

namespace {

using fme_test::contains;
using fme_test::TempDir;

const std::string kQwen = fme_test::kData + "/models/qwen2-tiny";

// Writes the tensors of qwen2-tiny into DIR as shard files. `shard_of(i, name)` picks the shard files
// (possibly several, possibly none) of tensor i. Returns the weight map {name: shard} of the first pick.
fme::Json write_shards(const std::string& dir,
                       const std::function<std::vector<std::string>(size_t, const std::string&)>& shard_of) {
  auto src = fme::SafetensorsFile::open(kQwen + "/model.safetensors");
  std::map<std::string, fme::SafetensorsWriter> writers;
  fme::Json weight_map = fme::Json::object();
  for (size_t i = 0; i < src->tensors().size(); ++i) {
    const auto& t = src->tensors()[i];
    auto shards = shard_of(i, t.name);
    for (const auto& s : shards) writers[s].add(t.name, t.dtype, t.shape, src->data(t), t.nbytes());
    if (!shards.empty()) weight_map[t.name] = shards.front();
  }
  for (auto& [name, w] : writers) w.write(dir + "/" + name);
  return weight_map;
}

void write_index(const std::string& dir, const fme::Json& weight_map) {
  fme::Json idx = {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}};
  fme_test::write_bytes(dir + "/model.safetensors.index.json", idx.dump(2));
}

const char* kShard1 = "model-00001-of-00002.safetensors";
const char* kShard2 = "model-00002-of-00002.safetensors";

std::vector<std::string> halves(size_t i, const std::string&) { return {i < 19 ? kShard1 : kShard2}; }

TEST(Checkpoint, SingleFile) {
  auto c = fme::Checkpoint::open(kQwen);
  EXPECT_EQ(c.dir(), kQwen);
  EXPECT_EQ(c.tensors().size(), 38u);
  const auto* e = c.find("model.norm.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->info->shape, std::vector<int64_t>{64});
  EXPECT_EQ(c.find("lm_head.weight"), nullptr);  // tied embeddings
}

TEST(Checkpoint, ShardedEqualsSingleFile) {
  TempDir d;
  write_index(d.path, write_shards(d.path, halves));
  auto sharded = fme::Checkpoint::open(d.path);
  auto single = fme::Checkpoint::open(kQwen);
  ASSERT_EQ(sharded.tensors().size(), single.tensors().size());
  std::set<const fme::SafetensorsFile*> files;
  for (const auto& [name, e] : single.tensors()) {
    SCOPED_TRACE(name);
    const auto* s = sharded.find(name);
    ASSERT_NE(s, nullptr);
    files.insert(s->file);
    EXPECT_EQ(s->info->name, name);
    EXPECT_EQ(s->info->dtype, e.info->dtype);
    EXPECT_EQ(s->info->shape, e.info->shape);
    ASSERT_EQ(s->info->nbytes(), e.info->nbytes());
    EXPECT_EQ(std::memcmp(s->file->data(*s->info), e.file->data(*e.info), e.info->nbytes()), 0);
  }
  EXPECT_EQ(files.size(), 2u);
  EXPECT_TRUE(contains(sharded.find("model.embed_tokens.weight")->file->path(), kShard1));
  EXPECT_TRUE(contains(sharded.find("model.norm.weight")->file->path(), kShard2));
}

TEST(Checkpoint, IndexNamingAMissingFile) {
  TempDir d;
  fme::Json wm = write_shards(d.path, halves);
  wm["model.norm.weight"] = "model-00003-of-00002.safetensors";
  write_index(d.path, wm);
  std::string m = fme_test::error_of<fme::IoError>([&] { fme::Checkpoint::open(d.path); });
  EXPECT_TRUE(contains(m, d / "model.safetensors.index.json")) << m;
  EXPECT_TRUE(contains(m, "tensor 'model.norm.weight' maps to shard 'model-00003-of-00002.safetensors', which does "
                          "not exist")) << m;
}

TEST(Checkpoint, TensorMissingFromItsShard) {
  TempDir d;
  // model.norm.weight is written to no shard, but the index puts it in shard 2.
  fme::Json wm = write_shards(d.path, [](size_t i, const std::string& n) {
    return n == "model.norm.weight" ? std::vector<std::string>{} : halves(i, n);
  });
  wm["model.norm.weight"] = kShard2;
  write_index(d.path, wm);
  std::string m = fme_test::error_of<fme::FormatError>([&] { fme::Checkpoint::open(d.path); });
  EXPECT_TRUE(contains(m, d / "model.safetensors.index.json")) << m;
  EXPECT_TRUE(contains(m, "tensor 'model.norm.weight' maps to shard '" + std::string(kShard2) + "', which lacks it"))
      << m;
}

TEST(Checkpoint, TensorInTwoShards) {
  TempDir d;
  fme::Json wm = write_shards(d.path, [](size_t i, const std::string& n) {
    if (n == "model.norm.weight") return std::vector<std::string>{kShard2, kShard1};
    return halves(i, n);
  });
  write_index(d.path, wm);
  std::string m = fme_test::error_of<fme::FormatError>([&] { fme::Checkpoint::open(d.path); });
  EXPECT_TRUE(contains(m, d / "model.safetensors.index.json")) << m;
  EXPECT_TRUE(contains(m, "tensor 'model.norm.weight' is in two shards: '" + std::string(kShard1) + "' and '" +
                              kShard2 + "'")) << m;
}

TEST(Checkpoint, ShardTensorNotInIndex) {
  TempDir d;
  fme::Json wm = write_shards(d.path, halves);
  wm.erase("model.norm.weight");
  write_index(d.path, wm);
  std::string m = fme_test::error_of<fme::FormatError>([&] { fme::Checkpoint::open(d.path); });
  EXPECT_TRUE(contains(m, "shard '" + std::string(kShard2) + "' holds tensor 'model.norm.weight', which the index "
                          "does not list")) << m;
}

TEST(Checkpoint, BadIndexDocuments) {
  TempDir d;
  const std::string idx = d / "model.safetensors.index.json";
  fme_test::write_bytes(idx, R"({"metadata": {}})");
  std::string m = fme_test::error_of<fme::FormatError>([&] { fme::Checkpoint::open(d.path); });
  EXPECT_TRUE(contains(m, idx + ": missing required key 'weight_map'")) << m;
  fme_test::write_bytes(idx, R"({"weight_map": {"a": "../../etc/passwd"}})");
  m = fme_test::error_of<fme::FormatError>([&] { fme::Checkpoint::open(d.path); });
  EXPECT_TRUE(contains(m, idx + ": tensor 'a' maps to '../../etc/passwd', which is not a relative path")) << m;
  fme_test::write_bytes(idx, R"({"weight_map": {"a": "s.safetensors", "a": "t.safetensors"}})");
  m = fme_test::error_of<fme::FormatError>([&] { fme::Checkpoint::open(d.path); });
  EXPECT_TRUE(contains(m, idx + " has duplicate key 'a' in the object at /weight_map")) << m;
  fme_test::write_bytes(idx, R"({"weight_map": {"a": 3}})");
  m = fme_test::error_of<fme::FormatError>([&] { fme::Checkpoint::open(d.path); });
  EXPECT_TRUE(contains(m, idx + ": weight_map entry 'a' must be a shard file name, got 3")) << m;
}

TEST(Checkpoint, DirectoryWithoutWeights) {
  TempDir d;
  fme_test::write_bytes(d / "config.json", "{}");
  std::string m = fme_test::error_of<fme::IoError>([&] { fme::Checkpoint::open(d.path); });
  EXPECT_TRUE(contains(m, d.path + ": no weights: found neither model.safetensors nor model.safetensors.index.json"))
      << m;
  m = fme_test::error_of<fme::IoError>([&] { fme::Checkpoint::open(d / "missing"); });
  EXPECT_TRUE(contains(m, d / "missing")) << m;
}

TEST(Checkpoint, BadShardIsReportedWithItsPath) {
  TempDir d;
  fme::Json wm = write_shards(d.path, halves);
  write_index(d.path, wm);
  fme_test::write_bytes(d / kShard2, "junk");
  std::string m = fme_test::error_of<fme::FormatError>([&] { fme::Checkpoint::open(d.path); });
  EXPECT_TRUE(contains(m, d / kShard2 + ": truncated")) << m;
}

}  // namespace
