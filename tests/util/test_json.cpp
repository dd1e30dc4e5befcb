// Tests of util/json: strict parsing (duplicate keys, depth) and typed field access with range checks.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "util/error.h"
#include "util/json.h"

namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const fme::Error& e) {
    return e.what();
  }
  return "<no exception>";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(ParseJson, SyntaxErrorIsFormatErrorNamingTheDocument) {
  EXPECT_THROW(fme::parse_json("{\"a\":", "cfg.json"), fme::FormatError);
  EXPECT_TRUE(contains(message_of([] { fme::parse_json("{\"a\":", "cfg.json"); }), "cfg.json: not valid JSON"));
}

// Found by fuzz_config: nlohmann reports a number beyond double range as out_of_range, not parse_error,
// and it escaped as a non-fme exception.
TEST(ParseJson, NumberOverflowIsFormatError) {
  EXPECT_TRUE(contains(message_of([] { fme::parse_json(R"({"a": 1e999})", "c.json"); }), "c.json: not valid JSON"));
  EXPECT_TRUE(contains(message_of([] { fme::parse_json_unique_keys(R"({"a": -1e999})", "c.json"); }),
                       "c.json is not valid JSON"));
}

TEST(ParseJsonUniqueKeys, AcceptsOrdinaryDocuments) {
  fme::Json j = fme::parse_json_unique_keys(R"({"a": {"x": 1}, "b": [{"x": 2}, {"x": 3}]}  )", "doc");
  EXPECT_EQ(j["b"][1]["x"], 3);
}

TEST(ParseJsonUniqueKeys, TopLevelDuplicateIsAnError) {
  std::string m = message_of([] { fme::parse_json_unique_keys(R"({"a": 1, "b": 2, "a": 3})", "doc.json"); });
  EXPECT_TRUE(contains(m, "doc.json has duplicate key 'a' in the top-level object")) << m;
}

TEST(ParseJsonUniqueKeys, NestedDuplicateNamesWhereItIs) {
  std::string m = message_of([] { fme::parse_json_unique_keys(R"({"w": {"t": "x", "t": "y"}})", "idx.json"); });
  EXPECT_TRUE(contains(m, "duplicate key 't' in the object at /w")) << m;
  // Equal keys in different objects are fine.
  EXPECT_NO_THROW(fme::parse_json_unique_keys(R"([{"a": 1}, {"a": 2}])", "doc"));
}

TEST(ParseJsonUniqueKeys, DepthIsCapped) {
  std::string deep = std::string(100, '[') + std::string(100, ']');
  EXPECT_NO_THROW(fme::parse_json_unique_keys(deep, "doc", 100));
  std::string m = message_of([&] { fme::parse_json_unique_keys("[" + deep + "]", "doc", 100); });
  EXPECT_TRUE(contains(m, "doc nests deeper than 100 levels")) << m;
}

TEST(ParseJsonUniqueKeys, SyntaxErrorMessageIsShortAndOneLine) {
  std::string huge = "\"" + std::string(100000, 'x');  // unterminated string: nlohmann quotes the token
  std::string m = message_of([&] { fme::parse_json_unique_keys(huge, "h.json"); });
  EXPECT_TRUE(contains(m, "h.json is not valid JSON")) << m;
  EXPECT_LT(m.size(), 400u);
  EXPECT_FALSE(contains(m, "\n"));
}

TEST(Require, ReturnsTypedValues) {
  fme::Json j = fme::Json::parse(R"({"i": 64, "f": 1e-6, "s": "silu", "b": true, "g": 64.0})");
  EXPECT_EQ(fme::require<int64_t>(j, "i", "c"), 64);
  EXPECT_DOUBLE_EQ(fme::require<double>(j, "f", "c"), 1e-6);
  EXPECT_DOUBLE_EQ(fme::require<double>(j, "i", "c"), 64.0);  // an integer is a number
  EXPECT_EQ(fme::require<std::string>(j, "s", "c"), "silu");
  EXPECT_TRUE(fme::require<bool>(j, "b", "c"));
  EXPECT_EQ(fme::require<int64_t>(j, "g", "c"), 64);  // integral float, as some exporters write
}

TEST(Require, MissingOrNullKeyIsConfigError) {
  fme::Json j = fme::Json::parse(R"({"n": null})");
  EXPECT_EQ(message_of([&] { fme::require<int64_t>(j, "k", "cfg.json"); }), "cfg.json: missing required key 'k'");
  EXPECT_EQ(message_of([&] { fme::require<int64_t>(j, "n", "cfg.json"); }), "cfg.json: missing required key 'n'");
  EXPECT_THROW(fme::require<int64_t>(j, "k", "c"), fme::ConfigError);
}

TEST(Require, WrongTypeNamesKeyAndValue) {
  fme::Json j = fme::Json::parse(R"({"s": "64", "f": 1.5, "b": 1, "o": {"a": 1}})");
  EXPECT_EQ(message_of([&] { fme::require<int64_t>(j, "s", "c.json"); }), "c.json: key 's' must be an integer, got \"64\"");
  EXPECT_EQ(message_of([&] { fme::require<int64_t>(j, "f", "c.json"); }), "c.json: key 'f' must be an integer, got 1.5");
  EXPECT_EQ(message_of([&] { fme::require<bool>(j, "b", "c.json"); }), "c.json: key 'b' must be a boolean, got 1");
  EXPECT_EQ(message_of([&] { fme::require<std::string>(j, "o", "c.json"); }),
            "c.json: key 'o' must be a string, got an object");
  EXPECT_THROW(fme::require<double>(j, "s", "c"), fme::ConfigError);
}

TEST(Require, OutOfRangeIntegersAreErrorsNotWraps) {
  fme::Json j = fme::Json::parse(R"({"big": 1e300, "u": 18446744073709551615, "neg": -1, "i32": 3000000000})");
  EXPECT_TRUE(contains(message_of([&] { fme::require<int64_t>(j, "big", "c"); }), "key 'big' is out of range"));
  EXPECT_TRUE(contains(message_of([&] { fme::require<int64_t>(j, "u", "c"); }), "key 'u' is out of range"));
  EXPECT_TRUE(contains(message_of([&] { fme::require<uint32_t>(j, "neg", "c"); }), "key 'neg' is out of range"));
  EXPECT_TRUE(contains(message_of([&] { fme::require<int32_t>(j, "i32", "c"); }), "key 'i32' is out of range"));
  EXPECT_EQ(fme::require<uint64_t>(j, "u", "c"), 18446744073709551615ull);
  EXPECT_EQ(fme::require<int64_t>(j, "i32", "c"), 3000000000ll);
}

TEST(Require, NonObjectIsConfigError) {
  EXPECT_THROW(fme::require<int64_t>(fme::Json::array(), "k", "c"), fme::ConfigError);
}

TEST(Optional, FallbackOnlyWhenAbsentOrNull) {
  fme::Json j = fme::Json::parse(R"({"n": null, "t": true, "s": "x"})");
  EXPECT_FALSE(fme::optional<bool>(j, "missing", false, "c"));
  EXPECT_FALSE(fme::optional<bool>(j, "n", false, "c"));
  EXPECT_TRUE(fme::optional<bool>(j, "t", false, "c"));
  EXPECT_THROW(fme::optional<bool>(j, "s", false, "c"), fme::ConfigError);  // present but mistyped
}

TEST(DescribeJson, ShortAndNonRecursive) {
  EXPECT_EQ(fme::describe_json(fme::Json::parse("[1,2]")), "an array");
  EXPECT_EQ(fme::describe_json(fme::Json::parse("{}")), "an object");
  EXPECT_EQ(fme::describe_json(fme::Json(3)), "3");
  EXPECT_EQ(fme::describe_json(fme::Json("ab")), "\"ab\"");
  EXPECT_LT(fme::describe_json(fme::Json(std::string(1000, 'z'))).size(), 100u);
}

}  // namespace
