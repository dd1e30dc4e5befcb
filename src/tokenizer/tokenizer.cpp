// fme::Tokenizer (see tokenizer.h): reads tokenizer.json into the pipeline parts and runs them as HF does.
//
// Invalid UTF-8: HF's Python/Rust API only accepts valid Unicode strings, so there is no reference
// behaviour to copy. encode() refuses such text with a FormatError naming the byte offset rather than
// guessing a replacement, so no caller silently gets ids for text it did not mean. decode() always succeeds:
// byte sequences that are not UTF-8 become U+FFFD, as HF's decode does.
#include "tokenizer/tokenizer.h"

#include <algorithm>

#include <sys/stat.h>

#include <cstdio>
#include <unordered_set>

#include "tokenizer/added_tokens.h"
#include "tokenizer/decoder.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pieces.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/file.h"

namespace fme {

struct Tokenizer::Impl {
  std::string source;  // file name for messages
  std::unique_ptr<tok::Normalizer> normalizer;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;
  std::unique_ptr<tok::Model> model;
  std::unique_ptr<tok::PostProcessor> post_processor;
  std::unique_ptr<tok::Decoder> decoder;
  tok::AddedTokens added;
  std::unordered_set<std::string> special_contents;
  std::vector<int32_t> special_ids;  // ascending
  int64_t vocab_size = 0;

  // Normalized text without raw added tokens -> normalized added tokens, pre-tokenizer, model.
  void encode_normalized(std::string_view text, tok::Pieces& pieces, std::vector<int32_t>& out) const {
    pieces.clear();
    if (pre_tokenizer) pre_tokenizer->split(text, pieces);
    else pieces.add(text);
    for (size_t i = 0; i < pieces.size(); ++i) model->tokenize(pieces[i], out);
  }
};

namespace {

std::vector<tok::AddedToken> read_added_tokens(const Json& root, const tok::Model& model, const tok::JsonFields& f) {
  std::vector<tok::AddedToken> out;
  const Json* list = tok::JsonFields::find(root, "added_tokens");
  if (!list) return out;
  if (!list->is_array()) f.fail("added_tokens", "expected an array, found " + tok::JsonFields::found(*list));
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& j = (*list)[i];
    std::string path = "added_tokens[" + std::to_string(i) + "]";
    tok::AddedToken t;
    t.content = f.get_string(j, "content", path);
    t.single_word = f.bool_or(j, "single_word", path, false);
    t.lstrip = f.bool_or(j, "lstrip", path, false);
    t.rstrip = f.bool_or(j, "rstrip", path, false);
    t.special = f.bool_or(j, "special", path, false);
    t.normalized = f.bool_or(j, "normalized", path, !t.special);
    // HF gives a token that the model already knows the model's id; others keep the id in the file.
    int32_t model_id = model.vocab().find(t.content);
    t.id = model_id >= 0 ? model_id : f.as_id(f.get(j, "id", path), path + ".id");
    out.push_back(std::move(t));
  }
  return out;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::string file = is_directory(path) ? path + "/tokenizer.json" : path;
  return from_json(read_file(file), file);
}

Tokenizer Tokenizer::from_json(const std::string& json_text, const std::string& what) {
  Json root = parse_json(json_text, what);
  tok::JsonFields f(what);
  if (!root.is_object()) throw FormatError(what + ": expected a JSON object at the top level, found " +
                                           tok::JsonFields::found(root));
  auto impl = std::make_unique<Impl>();
  impl->source = what;
  impl->model = tok::make_model(f.get(root, "model", ""), f);
  if (const Json* n = tok::JsonFields::find(root, "normalizer")) impl->normalizer = tok::make_normalizer(*n, "normalizer", f);
  if (const Json* p = tok::JsonFields::find(root, "pre_tokenizer"))
    impl->pre_tokenizer = tok::make_pre_tokenizer(*p, "pre_tokenizer", f);
  if (const Json* p = tok::JsonFields::find(root, "post_processor"))
    impl->post_processor = tok::make_post_processor(*p, "post_processor", f);
  if (const Json* d = tok::JsonFields::find(root, "decoder")) impl->decoder = tok::make_decoder(*d, "decoder", f);
  // "truncation" and "padding" are not applied: like transformers' fast tokenizers, which reset them on
  // every call, encode() returns the whole sequence.

  std::vector<tok::AddedToken> added = read_added_tokens(root, *impl->model, f);
  impl->vocab_size = impl->model->vocab().id_space();
  for (const auto& t : added) {
    impl->vocab_size = std::max<int64_t>(impl->vocab_size, int64_t(t.id) + 1);
    if (t.special) {
      impl->special_contents.insert(t.content);
      impl->special_ids.push_back(t.id);
    }
  }
  std::sort(impl->special_ids.begin(), impl->special_ids.end());
  impl->added.build(std::move(added), impl->normalizer.get());
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& m = *impl_;
  size_t bad = tok::find_invalid_utf8(text);
  if (bad != std::string_view::npos) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "0x%02X", static_cast<unsigned char>(text[bad]));
    throw FormatError(m.source + ": encode: the text is not valid UTF-8 (byte " + hex + " at offset " +
                      std::to_string(bad) + ")");
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 8);
  std::vector<tok::Segment> segments, inner;
  tok::Pieces pieces;
  m.added.split(text, false, segments);
  for (const tok::Segment& seg : segments) {
    if (seg.id >= 0) {
      out.push_back(seg.id);
      continue;
    }
    std::string_view raw = text.substr(seg.start, seg.end - seg.start);
    if (raw.empty()) continue;
    std::string normalized = m.normalizer ? m.normalizer->normalize(raw) : std::string(raw);
    if (!m.added.has_normalized()) {
      m.encode_normalized(normalized, pieces, out);
      continue;
    }
    inner.clear();
    m.added.split(normalized, true, inner);
    for (const tok::Segment& s : inner) {
      if (s.id >= 0) out.push_back(s.id);
      else if (s.end > s.start) m.encode_normalized(std::string_view(normalized).substr(s.start, s.end - s.start), pieces, out);
    }
  }
  if (add_special_tokens && m.post_processor) m.post_processor->process(out);
  return out;
}

std::vector<int32_t> Tokenizer::special_ids() const { return impl_->special_ids; }

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* tok = nullptr;
    if (const tok::AddedToken* a = m.added.by_id(id)) tok = &a->content;
    else tok = m.model->vocab().token(id);
    if (!tok) continue;  // unknown ids are skipped, as in HF
    if (skip_special_tokens && m.special_contents.count(*tok)) continue;
    tokens.push_back(*tok);
  }
  if (!m.decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  m.decoder->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

int32_t Tokenizer::token_to_id(std::string_view token) const {
  if (const tok::AddedToken* a = impl_->added.by_content(token)) return a->id;
  return impl_->model->vocab().find(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (const tok::AddedToken* a = impl_->added.by_id(id)) return a->content;
  const std::string* t = impl_->model->vocab().token(id);
  return t ? *t : std::string();
}

}  // namespace fme
