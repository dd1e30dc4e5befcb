// Bad tokenizer.json files: each is refused with the right exception, and the message names the file and
// the JSON field.
#include <functional>

#include "test_helpers.h"
#include "util/error.h"

namespace {

using fme::Json;

// A minimal valid byte-level BPE tokenizer.json, to break one field at a time.
Json minimal_bpe() {
  return {{"version", "1.0"},
          {"added_tokens", Json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}}};
}

// Loads `j` (or raw `text`) from a file; expects exception E whose message contains every one of `parts`.
template <typename E>
void expect_error(const std::string& text, const std::vector<std::string>& parts) {
  tokt::TempDir dir;
  std::string path = dir.put("tokenizer.json", text);
  try {
    fme::Tokenizer::from_file(path);
    ADD_FAILURE() << "no exception for " << text.substr(0, 200);
  } catch (const E& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "file not named: " << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

TEST(TokenizerBadFiles, MinimalFileLoads) {
  tokt::TempDir dir;
  auto tok = fme::Tokenizer::from_file(dir.put("tokenizer.json", minimal_bpe().dump()));
  EXPECT_EQ(tok.encode("ab"), (std::vector<int32_t>{2}));
  EXPECT_EQ(tok.encode("ba"), (std::vector<int32_t>{1, 0}));
  // from_file also takes the directory holding tokenizer.json.
  EXPECT_EQ(fme::Tokenizer::from_file(dir.path).encode("ab"), (std::vector<int32_t>{2}));
}

TEST(TokenizerBadFiles, NotJson) {
  expect_error<fme::FormatError>("{\"model\": {", {"JSON"});
  expect_error<fme::FormatError>("", {"JSON"});
  expect_error<fme::FormatError>("[1, 2]", {"object"});
}

TEST(TokenizerBadFiles, UnsupportedModelType) {
  Json j = minimal_bpe();
  j["model"]["type"] = "Unigram";
  expect_error<fme::UnsupportedError>(j.dump(), {"model.type", "Unigram"});
}

TEST(TokenizerBadFiles, MissingOrBrokenModel) {
  Json j = minimal_bpe();
  j.erase("model");
  expect_error<fme::FormatError>(j.dump(), {"'model'", "missing"});

  j = minimal_bpe();
  j["model"].erase("vocab");
  expect_error<fme::FormatError>(j.dump(), {"model.vocab", "missing"});

  j = minimal_bpe();
  j["model"]["vocab"] = Json::array({"a", "b"});
  expect_error<fme::FormatError>(j.dump(), {"model.vocab", "array"});

  j = minimal_bpe();
  j["model"]["vocab"]["c"] = -4;
  expect_error<fme::FormatError>(j.dump(), {"model.vocab[\"c\"]", "-4"});

  j = minimal_bpe();
  j["model"]["merges"] = {"a c"};
  expect_error<fme::FormatError>(j.dump(), {"model.merges[0]", "'c'"});

  j = minimal_bpe();
  j["model"]["merges"] = {"a b c"};
  expect_error<fme::FormatError>(j.dump(), {"model.merges[0]"});

  j = minimal_bpe();
  j["model"]["vocab"].erase("ab");
  expect_error<fme::FormatError>(j.dump(), {"model.merges[0]", "'ab'"});

  // No "type" and nothing that identifies a model.
  j = minimal_bpe();
  j["model"] = {{"vocab", {{"a", 0}}}};
  expect_error<fme::FormatError>(j.dump(), {"model", "type"});
}

TEST(TokenizerBadFiles, UnsupportedPipelineParts) {
  Json j = minimal_bpe();
  j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}};
  expect_error<fme::UnsupportedError>(j.dump(), {"normalizer.type", "Precompiled"});

  j = minimal_bpe();
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", {{{"type", "ByteLevel"}}, {{"type", "Metaspace"}, {"replacement", "_"}}}}};
  expect_error<fme::UnsupportedError>(j.dump(), {"pre_tokenizer.pretokenizers[1].type", "Metaspace"});

  j = minimal_bpe();
  j["decoder"] = {{"type", "CTC"}};
  expect_error<fme::UnsupportedError>(j.dump(), {"decoder.type", "CTC", "ByteFallback"});

  j = minimal_bpe();
  j["post_processor"] = {{"type", "Mystery"}};
  expect_error<fme::UnsupportedError>(j.dump(), {"post_processor.type", "Mystery"});

  j = minimal_bpe();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Sideways"}};
  expect_error<fme::UnsupportedError>(j.dump(), {"pre_tokenizer.behavior", "Sideways"});
}

TEST(TokenizerBadFiles, BrokenPipelineParts) {
  Json j = minimal_bpe();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_error<fme::FormatError>(j.dump(), {"pre_tokenizer.pattern.Regex", "regex"});

  j = minimal_bpe();
  j["normalizer"] = {{"kind", "NFC"}};
  expect_error<fme::FormatError>(j.dump(), {"normalizer.type", "missing"});

  j = minimal_bpe();
  j["added_tokens"] = {{{"content", "<x>"}}};
  expect_error<fme::FormatError>(j.dump(), {"added_tokens[0].id", "missing"});

  j = minimal_bpe();
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}}}},
                         {"special_tokens", Json::object()}};
  expect_error<fme::FormatError>(j.dump(), {"post_processor.special_tokens", "[CLS]"});

  j = minimal_bpe();
  j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Text", " "}}}, {"content", "x"}};
  expect_error<fme::FormatError>(j.dump(), {"normalizer.pattern", "\"String\""});

  j = minimal_bpe();
  j["normalizer"] = {{"type", "Prepend"}};
  expect_error<fme::FormatError>(j.dump(), {"normalizer.prepend", "missing"});

  j = minimal_bpe();
  j["decoder"] = {{"type", "Strip"}, {"content", "ab"}, {"start", 1}, {"stop", 0}};
  expect_error<fme::FormatError>(j.dump(), {"decoder.content", "one character"});
}

TEST(TokenizerBadFiles, MissingFileIsAnIoError) {
  tokt::TempDir dir;
  EXPECT_THROW(fme::Tokenizer::from_file(dir.path + "/nope.json"), fme::IoError);
  EXPECT_THROW(fme::Tokenizer::from_file(dir.path), fme::IoError);  // a directory without tokenizer.json
}

TEST(TokenizerBadFiles, FromJsonNamesItsSource) {
  try {
    fme::Tokenizer::from_json("not json", "my-source");
    ADD_FAILURE() << "no exception";
  } catch (const fme::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("my-source"), std::string::npos) << e.what();
  }
}

// bert-base-uncased's model has no "type" (the older format); it is recognised as WordPiece by its fields.
TEST(TokenizerBadFiles, UntypedWordPieceModelIsRecognised) {
  Json j = fme::read_json_file(tokt::data_dir() + "/tokenizers/bert-base-uncased/tokenizer.json");
  ASSERT_FALSE(j["model"].contains("type"));
  auto tok = fme::Tokenizer::from_json(j.dump(), "bert");
  ASSERT_GE(tok.token_to_id("hello"), 0);
  EXPECT_EQ(tok.encode("Hello world", false), (std::vector<int32_t>{tok.token_to_id("hello"), tok.token_to_id("world")}));
}

}  // namespace
