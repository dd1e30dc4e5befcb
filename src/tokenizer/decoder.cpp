// Decoders (see decoder.h), as HF's decoders/{wordpiece,sequence,byte_fallback,fuse,strip}.rs,
// normalizers/replace.rs (the Replace decoder) and pre_tokenizers/byte_level.rs.
#include "tokenizer/decoder.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace fme::tok {
namespace {

// Maps every byte-level character back to its byte; a token with any other character contributes its
// UTF-8 bytes unchanged. Invalid UTF-8 in the result becomes U+FFFD (from_utf8_lossy), as in HF.
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    std::string tok_bytes;
    for (const std::string& t : tokens) {
      tok_bytes.clear();
      bool all = true;
      size_t i = 0;
      while (i < t.size()) {
        int b = char_to_byte(next_cp(t, i));
        if (b < 0) {
          all = false;
          break;
        }
        tok_bytes.push_back(static_cast<char>(b));
      }
      bytes += all ? tok_bytes : t;
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

// HF's decoders::wordpiece::cleanup, applied to each token as HF does.
std::string cleanup(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    std::string out;
    std::string_view f(from);
    size_t pos = 0, hit;
    while ((hit = s.find(f, pos)) != std::string::npos) {
      out.append(s, pos, hit - pos);
      out += to;
      pos = hit + f.size();
    }
    if (pos == 0) continue;
    out.append(s, pos, std::string::npos);
    s.swap(out);
  }
  return s;
}

class WordPieceDecoder : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i != 0) {
        // HF: starts_with(prefix) then replacen(prefix, "", 1), i.e. drop the leading prefix; an empty
        // prefix always "matches", so such a decoder never inserts spaces.
        if (t.compare(0, prefix_.size(), prefix_) == 0) t.erase(0, prefix_.size());
        else t.insert(t.begin(), ' ');
      }
      if (cleanup_) t = cleanup(std::move(t));
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

// Each token with every match of the pattern replaced (SentencePiece's "▁" back to " ").
class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Regex> pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) t = pattern_->replace_all(t, content_);
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

// Runs of byte tokens "<0xAB>" become the text of their bytes; a run that is not valid UTF-8 becomes one
// U+FFFD per byte (HF's ByteFallback, not from_utf8_lossy).
class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string run;
    size_t run_len = 0;
    auto flush = [&] {
      if (run_len == 0) return;
      if (find_invalid_utf8(run) == std::string_view::npos) out.push_back(run);
      else
        for (size_t i = 0; i < run_len; ++i) out.emplace_back("\xEF\xBF\xBD");
      run.clear();
      run_len = 0;
    };
    for (auto& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
          std::isxdigit(static_cast<unsigned char>(t[4])))
        byte = std::stoi(t.substr(3, 2), nullptr, 16);
      if (byte >= 0) {
        run.push_back(static_cast<char>(byte));
        ++run_len;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

// All tokens joined into one.
class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Up to `start` leading and `stop` trailing `content` characters removed from each token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    const size_t c = content_.size();
    for (auto& t : tokens) {
      size_t begin = 0, end = t.size();
      for (size_t i = 0; i < start_ && begin + c <= end && t.compare(begin, c, content_) == 0; ++i) begin += c;
      for (size_t i = 0; i < stop_ && end >= begin + c && t.compare(end - c, c, content_) == 0; ++i) end -= c;
      t = t.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;  // one character (UTF-8)
  size_t start_, stop_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& s : steps_) s->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const Json& j, const std::string& path, const JsonFields& f) {
  if (!j.is_object()) f.fail(path, "expected an object, found " + JsonFields::found(j));
  std::string type = f.get_string(j, "type", path);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "WordPiece")
    return std::make_unique<WordPieceDecoder>(f.string_or(j, "prefix", path, "##"), f.bool_or(j, "cleanup", path, true));
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(
        Regex::from_pattern(f.get_object(j, "pattern", path), JsonFields::join(path, "pattern"), f),
        f.get_string(j, "content", path));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    const std::string content = f.get_string(j, "content", path);
    if (content.empty() || utf8_len(static_cast<unsigned char>(content[0])) != content.size())
      f.fail(JsonFields::join(path, "content"), "expected one character, found \"" + content + "\"");
    const Json& start = j.contains("start") ? j["start"] : Json(0);
    const Json& stop = j.contains("stop") ? j["stop"] : Json(0);
    if (!start.is_number_unsigned() || !stop.is_number_unsigned())
      f.fail(path, "expected non-negative integers \"start\" and \"stop\"");
    return std::make_unique<StripDecoder>(content, start.get<size_t>(), stop.get<size_t>());
  }
  if (type == "Sequence") {
    const Json& list = f.get_array(j, "decoders", path);
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list.size(); ++i)
      steps.push_back(make_decoder(list[i], path + ".decoders[" + std::to_string(i) + "]", f));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  f.unsupported(path + ".type", type, "ByteLevel, WordPiece, Replace, ByteFallback, Fuse, Strip, Sequence");
}

}  // namespace fme::tok
