// BPE model (see bpe.h), as HF's models/bpe/{model,word}.rs: initial symbols (with unk / byte fallback),
// then merges popped from a min-heap by (rank, position), stale entries skipped.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <mutex>
#include <unordered_map>

#include "tokenizer/unicode.h"

namespace fme::tok {
namespace {

// Merge table keyed by (left id, right id). Open addressing: the table is built once and probed for
// every adjacent pair of every word, so it avoids std::unordered_map's node chasing.
class PairMap {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t new_id = 0;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Entry{});
    shift_ = 64 - __builtin_ctzll(cap);
  }
  // Inserts or overwrites (a later duplicate merge wins, as in HF's HashMap collect).
  void put(int32_t a, int32_t b, int32_t rank, int32_t new_id) {
    uint64_t key = make_key(a, b);
    size_t mask = slots_.size() - 1, i = index(key);
    while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask;
    slots_[i] = Entry{key, rank, new_id};
  }
  const Entry* get(int32_t a, int32_t b) const {
    uint64_t key = make_key(a, b);
    size_t mask = slots_.size() - 1, i = index(key);
    while (true) {
      const Entry& e = slots_[i];
      if (e.key == key) return &e;
      if (e.key == kEmpty) return nullptr;
      i = (i + 1) & mask;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t make_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  size_t index(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  std::vector<Entry> slots_;
  int shift_ = 60;
};

// A bounded word -> ids cache, sharded so that threads encoding at once rarely wait on the same mutex.
class WordCache {
 public:
  bool get(std::string_view word, uint64_t h, std::vector<int32_t>& out) {
    Shard& s = shards_[h & (kShards - 1)];
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(std::string(word));
    if (it == s.map.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }
  void put(std::string_view word, uint64_t h, const int32_t* ids, size_t n) {
    Shard& s = shards_[h & (kShards - 1)];
    std::lock_guard<std::mutex> lock(s.mu);
    // Dropping everything when full is crude, but keeps memory bounded and adapts to new text.
    if (s.map.size() >= kShardCapacity) s.map.clear();
    s.map.emplace(std::string(word), std::vector<int32_t>(ids, ids + n));
  }

 private:
  static constexpr size_t kShards = 16;
  static constexpr size_t kShardCapacity = 8192;
  struct Hash {
    size_t operator()(const std::string& s) const { return static_cast<size_t>(hash_bytes(s) >> 4); }
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, Hash> map;
  };
  std::array<Shard, kShards> shards_;
};

struct Config {
  std::string unk_token;  // empty: none
  std::string prefix;     // continuing_subword_prefix
  std::string suffix;     // end_of_word_suffix
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class Bpe : public Model {
 public:
  Bpe(Vocab vocab, PairMap merges, Config cfg, int32_t unk_id)
      : vocab_(std::move(vocab)), merges_(std::move(merges)), cfg_(std::move(cfg)), unk_id_(unk_id) {
    // Ids of single characters below U+0800 (this covers all 256 byte-level symbols), so building the
    // initial symbols of a word needs no hashing.
    char_ids_.assign(0x800, -1);
    std::string s;
    for (char32_t c = 0; c < 0x800; ++c) {
      s.clear();
      append_utf8(s, c);
      char_ids_[c] = vocab_.find(s);
    }
  }

  const Vocab& vocab() const override { return vocab_; }

  void tokenize(std::string_view word, std::vector<int32_t>& out) const override {
    if (cfg_.ignore_merges) {
      int32_t id = vocab_.find(word);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    bool cacheable = word.size() <= kMaxCachedBytes;
    uint64_t h = cacheable ? hash_bytes(word) : 0;
    if (cacheable && cache_.get(word, h, out)) return;
    size_t before = out.size();
    encode_word(word, out);
    if (cacheable) cache_.put(word, h, out.data() + before, out.size() - before);
  }

 private:
  static constexpr size_t kMaxCachedBytes = 256;

  struct Symbol {
    int32_t id, prev, next, len;
  };
  struct Merge {
    int32_t rank, pos, new_id;
  };

  // Initial symbols of a word: one per character, as HF's BPE::merge_word.
  void initial_symbols(std::string_view w, std::vector<Symbol>& syms) const {
    bool plain = cfg_.prefix.empty() && cfg_.suffix.empty();
    bool have_unk = false;
    int32_t unk_len = 0;
    std::string s;
    auto add = [&](int32_t id, int32_t len) {
      int32_t n = static_cast<int32_t>(syms.size());
      syms.push_back(Symbol{id, n - 1, n + 1, len});
    };
    size_t i = 0;
    while (i < w.size()) {
      size_t at = i;
      char32_t c = next_cp(w, i);
      int32_t byte_len = static_cast<int32_t>(i - at);
      int32_t id;
      if (plain && c < 0x800) {
        id = char_ids_[c];
      } else if (plain) {
        id = vocab_.find(w.substr(at, i - at));
      } else {
        s.clear();
        if (at > 0) s += cfg_.prefix;
        s.append(w.data() + at, i - at);
        if (i == w.size()) s += cfg_.suffix;
        id = vocab_.find(s);
      }
      if (id >= 0) {
        if (have_unk) {
          add(unk_id_, unk_len);
          have_unk = false;
        }
        add(id, byte_len);
        continue;
      }
      if (cfg_.byte_fallback) {
        std::array<int32_t, 4> ids{};
        bool all = true;
        for (size_t k = at; k < i; ++k) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "<0x%02X>", static_cast<unsigned char>(w[k]));
          ids[k - at] = vocab_.find(buf);
          all = all && ids[k - at] >= 0;
        }
        if (all) {
          for (size_t k = at; k < i; ++k) add(ids[k - at], 1);
          continue;  // HF does not flush a pending unknown here either
        }
      }
      if (unk_id_ >= 0) {
        if (have_unk && cfg_.fuse_unk) {
          unk_len += byte_len;
        } else {
          if (have_unk) add(unk_id_, unk_len);
          have_unk = true;
          unk_len = byte_len;
        }
      }
      // Without an unknown token the character is dropped, as in HF.
    }
    if (have_unk) add(unk_id_, unk_len);
    if (!syms.empty()) syms.back().next = -1;
  }

  void encode_word(std::string_view w, std::vector<int32_t>& out) const {
    std::vector<Symbol> syms;
    syms.reserve(w.size());
    initial_symbols(w, syms);
    const int32_t n = static_cast<int32_t>(syms.size());
    // Min-heap on (rank, pos).
    auto worse = [](const Merge& a, const Merge& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
    std::vector<Merge> heap;
    heap.reserve(static_cast<size_t>(n));
    for (int32_t p = 0; p + 1 < n; ++p) {
      if (const PairMap::Entry* e = merges_.get(syms[p].id, syms[p + 1].id)) heap.push_back({e->rank, p, e->new_id});
    }
    std::make_heap(heap.begin(), heap.end(), worse);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), worse);
      Merge top = heap.back();
      heap.pop_back();
      Symbol& cur = syms[top.pos];
      if (cur.len == 0 || cur.next == -1) continue;  // merged away, or last symbol
      int32_t next_pos = cur.next;
      Symbol right = syms[next_pos];
      const PairMap::Entry* e = merges_.get(cur.id, right.id);
      if (!e || e->new_id != top.new_id) continue;  // stale entry
      cur.id = top.new_id;
      cur.len += right.len;
      cur.next = right.next;
      syms[next_pos].len = 0;
      if (right.next >= 0 && right.next < n) syms[right.next].prev = top.pos;
      if (cur.prev >= 0) {
        if (const PairMap::Entry* pe = merges_.get(syms[cur.prev].id, cur.id)) {
          heap.push_back({pe->rank, cur.prev, pe->new_id});
          std::push_heap(heap.begin(), heap.end(), worse);
        }
      }
      if (cur.next >= 0 && cur.next < n) {
        if (const PairMap::Entry* ne = merges_.get(cur.id, syms[cur.next].id)) {
          heap.push_back({ne->rank, top.pos, ne->new_id});
          std::push_heap(heap.begin(), heap.end(), worse);
        }
      }
    }
    for (const Symbol& s : syms)
      if (s.len != 0) out.push_back(s.id);
  }

  Vocab vocab_;
  PairMap merges_;
  Config cfg_;
  int32_t unk_id_;
  std::vector<int32_t> char_ids_;
  mutable WordCache cache_;
};

// Splits one entry of "merges": "a b" (older files) or ["a", "b"] (newer files).
std::pair<std::string, std::string> read_merge(const Json& m, const std::string& path, const JsonFields& f) {
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    size_t sp = s.find(' ');
    if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
      f.fail(path, "expected \"left right\" (two tokens separated by one space), found " + JsonFields::found(m));
    return {s.substr(0, sp), s.substr(sp + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return {m[0].get<std::string>(), m[1].get<std::string>()};
  f.fail(path, "expected \"left right\" or [\"left\", \"right\"], found " + JsonFields::found(m));
}

}  // namespace

std::unique_ptr<Model> make_bpe(const Json& j, const std::string& path, const JsonFields& f) {
  Vocab vocab = read_vocab(f.get(j, "vocab", path), path + ".vocab", f);
  Config cfg;
  cfg.unk_token = f.string_or(j, "unk_token", path, "");
  cfg.prefix = f.string_or(j, "continuing_subword_prefix", path, "");
  cfg.suffix = f.string_or(j, "end_of_word_suffix", path, "");
  cfg.fuse_unk = f.bool_or(j, "fuse_unk", path, false);
  cfg.byte_fallback = f.bool_or(j, "byte_fallback", path, false);
  cfg.ignore_merges = f.bool_or(j, "ignore_merges", path, false);
  if (const Json* d = JsonFields::find(j, "dropout")) {
    if (!d->is_number()) f.fail(path + ".dropout", "expected a number or null, found " + JsonFields::found(*d));
    // Dropout makes encoding random; it is a training-time feature.
    if (d->get<double>() != 0.0) f.unsupported(path + ".dropout", d->dump(), "null or 0");
  }
  int32_t unk_id = -1;
  if (!cfg.unk_token.empty()) {
    unk_id = vocab.find(cfg.unk_token);
    if (unk_id < 0) f.fail(path + ".unk_token", "the unknown token '" + cfg.unk_token + "' is not in model.vocab");
  }

  const Json& merges = f.get_array(j, "merges", path);
  PairMap map;
  map.reserve(merges.size());
  std::string merged;
  for (size_t r = 0; r < merges.size(); ++r) {
    std::string mpath = path + ".merges[" + std::to_string(r) + "]";
    auto [a, b] = read_merge(merges[r], mpath, f);
    int32_t a_id = vocab.find(a), b_id = vocab.find(b);
    if (a_id < 0) f.fail(mpath, "token '" + a + "' is not in model.vocab");
    if (b_id < 0) f.fail(mpath, "token '" + b + "' is not in model.vocab");
    // The merged token drops the right side's continuing-subword prefix, as in HF.
    std::string_view right = b;
    if (!cfg.prefix.empty() && right.substr(0, cfg.prefix.size()) == cfg.prefix) right.remove_prefix(cfg.prefix.size());
    merged.assign(a);
    merged.append(right);
    int32_t new_id = vocab.find(merged);
    if (new_id < 0) f.fail(mpath, "merged token '" + merged + "' is not in model.vocab");
    map.put(a_id, b_id, static_cast<int32_t>(r), new_id);
  }
  return std::make_unique<Bpe>(std::move(vocab), std::move(map), std::move(cfg), unk_id);
}

}  // namespace fme::tok
