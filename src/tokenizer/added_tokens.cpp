// Added-token matching (see added_tokens.h), as HF's tokenizer/added_vocabulary.rs find_matches().
// HF uses an Aho-Corasick automaton; with the few dozen added tokens of real tokenizers a scan with a
// first-byte filter is as fast and keeps the leftmost-longest rule obvious.
#include "tokenizer/added_tokens.h"

#include <algorithm>
#include <cstring>

#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"

namespace fme::tok {
namespace {

// The last character of s, or 0 when empty (s is valid UTF-8).
char32_t last_char(std::string_view s) {
  if (s.empty()) return 0;
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  size_t j = i;
  return next_cp(s, j);
}

}  // namespace

void AddedTokens::build(std::vector<AddedToken> tokens, const Normalizer* normalizer) {
  tokens_ = std::move(tokens);
  raw_ = Group{};
  norm_ = Group{};
  by_id_.clear();
  for (size_t t = 0; t < tokens_.size(); ++t) by_id_[tokens_[t].id] = t;  // later entries win, as in HF
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const AddedToken& tok = tokens_[t];
    if (tok.content.empty()) continue;  // HF ignores empty added tokens
    Group& g = tok.normalized ? norm_ : raw_;
    std::string pattern = tok.normalized && normalizer ? normalizer->normalize(tok.content) : tok.content;
    if (pattern.empty()) continue;
    // One pattern per distinct string: the first token listed wins, as for an Aho-Corasick pattern set.
    if (std::find(g.patterns.begin(), g.patterns.end(), pattern) != g.patterns.end()) continue;
    g.first_byte[static_cast<unsigned char>(pattern[0])] = true;
    g.patterns.push_back(std::move(pattern));
    g.token.push_back(t);
  }
}

const AddedToken* AddedTokens::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::by_content(std::string_view content) const {
  for (size_t i = tokens_.size(); i-- > 0;)
    if (tokens_[i].content == content) return &tokens_[i];
  return nullptr;
}

void AddedTokens::split(std::string_view s, bool normalized_group, std::vector<Segment>& out) const {
  const Group& g = normalized_group ? norm_ : raw_;
  size_t start_offset = 0;  // end of the last emitted token
  size_t pos = 0;           // where the search resumes (after the last match, kept or discarded)
  const size_t n = s.size();
  while (pos < n && !g.patterns.empty()) {
    // Leftmost position where some pattern matches; there the longest pattern.
    size_t best = SIZE_MAX, best_len = 0;
    for (size_t i = pos; i < n && best == SIZE_MAX; ++i) {
      if (!g.first_byte[static_cast<unsigned char>(s[i])]) continue;
      for (size_t p = 0; p < g.patterns.size(); ++p) {
        const std::string& pat = g.patterns[p];
        if (pat.size() > best_len && pat.size() <= n - i && std::memcmp(s.data() + i, pat.data(), pat.size()) == 0) {
          best = i;
          best_len = pat.size();
        }
      }
    }
    if (best == SIZE_MAX) break;
    size_t p = 0;  // the pattern of the longest match at `best`
    while (!(g.patterns[p].size() == best_len && std::memcmp(s.data() + best, g.patterns[p].data(), best_len) == 0)) ++p;
    const AddedToken& tok = tokens_[g.token[p]];
    size_t start = best, stop = best + best_len;
    pos = stop;
    if (tok.single_word) {
      // A word boundary on both sides, with Rust regex's \w as HF checks it.
      bool start_space = start == 0 || !is_word_char(last_char(s.substr(0, start)));
      size_t j = stop;
      bool stop_space = stop == n || !is_word_char(next_cp(s, j));
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) {
      // Swallow whitespace on the left, but not what an earlier token already took.
      size_t k = start;
      while (k > 0) {
        size_t b = k - 1;
        while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
        size_t tmp = b;
        if (!is_white_space(next_cp(s, tmp))) break;
        k = b;
      }
      start = std::max(k, start_offset);
    }
    if (tok.rstrip) {
      size_t k = stop;
      while (k < n) {
        size_t tmp = k;
        if (!is_white_space(next_cp(s, tmp))) break;
        k = tmp;
      }
      stop = k;
    }
    // HF lets an rstrip overlap the next match; the next text cannot start before what was consumed.
    start = std::max(start, start_offset);
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, tok.id});
    start_offset = stop;
  }
  if (start_offset < n || n == 0) out.push_back({start_offset, n, -1});
}

}  // namespace fme::tok
