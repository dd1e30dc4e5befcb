// Tests of plans/glob: `*` crosses dots and matches the empty run, `?` is one character, and a pattern
// must match the whole path.
#include <gtest/gtest.h>

#include "plans/glob.h"

namespace fme::plans {
namespace {

TEST(Glob, LiteralMatchesOnlyItself) {
  EXPECT_TRUE(glob_match("pooler.dense", "pooler.dense"));
  EXPECT_FALSE(glob_match("pooler.dense", "pooler.denser"));
  EXPECT_FALSE(glob_match("pooler.dense", "pooler_dense"));  // '.' is literal, not "any char"
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "a"));
}

TEST(Glob, StarCrossesDots) {
  EXPECT_TRUE(glob_match("*.output.dense", "encoder.layer.0.output.dense"));
  EXPECT_TRUE(glob_match("*.output.dense", "encoder.layer.11.attention.output.dense"));
  EXPECT_TRUE(glob_match("encoder.*.query", "encoder.layer.3.attention.self.query"));
  EXPECT_TRUE(glob_match("*", "a.b.c"));
  EXPECT_TRUE(glob_match("*", ""));
}

TEST(Glob, StarMatchesEmptyRun) {
  EXPECT_TRUE(glob_match("*.dense", ".dense"));
  EXPECT_TRUE(glob_match("pooler.dense*", "pooler.dense"));
  EXPECT_TRUE(glob_match("a*b", "ab"));
  EXPECT_TRUE(glob_match("**", ""));
  // The literal dot before "output" is still required: a root-level "output.dense" does not match.
  EXPECT_FALSE(glob_match("*.output.dense", "output.dense"));
}

TEST(Glob, QuestionMarkIsExactlyOneCharacter) {
  EXPECT_TRUE(glob_match("encoder.layer.?.output.dense", "encoder.layer.7.output.dense"));
  EXPECT_FALSE(glob_match("encoder.layer.?.output.dense", "encoder.layer.10.output.dense"));
  EXPECT_FALSE(glob_match("a?", "a"));
  EXPECT_TRUE(glob_match("a?c", "a.c"));  // `?` matches a dot too
}

TEST(Glob, AnchoredAtBothEnds) {
  EXPECT_FALSE(glob_match("attention.self.query", "encoder.layer.0.attention.self.query"));
  EXPECT_FALSE(glob_match("*.self", "encoder.layer.0.attention.self.query"));
  EXPECT_FALSE(glob_match("encoder", "encoder.layer"));
  EXPECT_FALSE(glob_match("*.query", "encoder.layer.0.attention.self.query.lora_A"));
}

TEST(Glob, BacktracksAcrossRepeatedSuffixes) {
  EXPECT_TRUE(glob_match("*.dense.dense", "a.dense.dense.dense"));
  EXPECT_TRUE(glob_match("*a*b*c", "xaxbxbxc"));
  EXPECT_FALSE(glob_match("*a*b*c", "xaxbxbx"));
  EXPECT_TRUE(glob_match("*layer.*.output.*", "encoder.layer.1.output.dense"));
}

}  // namespace
}  // namespace fme::plans
