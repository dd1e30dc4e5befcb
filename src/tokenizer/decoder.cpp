// Decoders (see decoder.h), as HF's decoders/{wordpiece,sequence}.rs and pre_tokenizers/byte_level.rs.
#include "tokenizer/decoder.h"

#include "tokenizer/byte_level.h"
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
  if (type == "Sequence") {
    const Json& list = f.get_array(j, "decoders", path);
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list.size(); ++i)
      steps.push_back(make_decoder(list[i], path + ".decoders[" + std::to_string(i) + "]", f));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  f.unsupported(path + ".type", type, "ByteLevel, WordPiece, Sequence");
}

}  // namespace fme::tok
