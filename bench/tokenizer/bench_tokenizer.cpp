// Tokenizer throughput against Hugging Face tokenizers: encodes the "text" fields of
// text/fineweb-legal-sample/*.jsonl with every tokenizer under tokenizers/ of the shared data (or the
// --tokenizers subset), without special tokens (encode(text, false)), one text at a time on one thread, and
// prints one JSON line per tokenizer with MB/s and Mtok/s: "cold" is the first pass of a freshly loaded
// tokenizer (empty word cache), "warm" the best of the following passes. In the same run the HF peer
// (peer/hf_tokenizers_peer.js: the Rust tokenizers library through its Node binding, npm tokenizers pinned
// in peer/package.json, one thread) encodes the identical texts (written to a temp file), and each line gets
// hf_mb_per_s_cold/warm, fme_over_hf_cold/warm (the target is >= 1) and whether the token counts and the ids
// agree. When node or peer/node_modules is missing (scripts/setup.sh installs both) the hf fields are null
// and peer_error says why; a tokenizer fme cannot load or encode gets null fme fields and fme_error (and the
// exit status is 1 once all lines are printed). Each line names the CPU and its ISA features.
//   bench_tokenizer [shared-data-dir] [passes] [--tokenizers a,b] [--node PATH] [--no-peer]   (--help)
// shared-data-dir defaults to the FME_SHARED_DATA the build was configured with; passes (default 3) are the
// warm passes after the cold one, for fme and the peer alike.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "tokenizer/tokenizer.h"
#include "util/cpu_features.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<std::string> load_texts(const std::string& dir) {
  std::vector<std::string> paths;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string p = e.path().string();
    if (p.size() > 6 && p.compare(p.size() - 6, 6, ".jsonl") == 0 && p.find(".token_ids.") == std::string::npos)
      paths.push_back(p);
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> texts;
  for (const auto& p : paths) {
    std::string content = fme::read_file(p);
    size_t pos = 0;
    while (pos < content.size()) {
      size_t nl = content.find('\n', pos);
      if (nl == std::string::npos) nl = content.size();
      if (nl > pos) texts.push_back(fme::parse_json(content.substr(pos, nl - pos), p).at("text").get<std::string>());
      pos = nl + 1;
    }
  }
  return texts;
}

// Every folder of `dir` holding a tokenizer.json, by name.
std::vector<std::string> list_tokenizers(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && fs::exists(e.path() / "tokenizer.json")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// FNV-1a (32-bit) over every id, each text's token count mixed in after its ids: as the peer computes it.
uint32_t mix(uint32_t h, uint32_t x) { return (h ^ x) * 16777619u; }

std::string hex32(uint32_t h) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", h);
  return buf;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// The texts as JSON strings, one per line, in a temp file removed on destruction.
struct TextsFile {
  std::string path;
  explicit TextsFile(const std::vector<std::string>& texts) {
    std::string tmpl = (fs::temp_directory_path() / "fme-bench-tokenizer-XXXXXX").string();
    int fd = mkstemp(tmpl.data());
    if (fd < 0) throw fme::IoError("cannot create a temp file from " + tmpl);
    path = tmpl;
    std::string lines;
    for (const auto& t : texts) lines += fme::Json(t).dump() + "\n";
    size_t off = 0;
    while (off < lines.size()) {
      ssize_t n = ::write(fd, lines.data() + off, lines.size() - off);
      if (n <= 0) {
        ::close(fd);
        throw fme::IoError("cannot write " + path);
      }
      off += static_cast<size_t>(n);
    }
    ::close(fd);
  }
  ~TextsFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

// Finds `node` (a path, or a name looked up on PATH); empty if absent.
std::string find_node(const std::string& node) {
  if (node.find('/') != std::string::npos) return access(node.c_str(), X_OK) == 0 ? node : "";
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "";
  size_t pos = 0;
  while (pos <= p.size()) {
    size_t c = p.find(':', pos);
    if (c == std::string::npos) c = p.size();
    std::string cand = (c > pos ? p.substr(pos, c - pos) : std::string(".")) + "/" + node;
    if (access(cand.c_str(), X_OK) == 0) return cand;
    pos = c + 1;
  }
  return "";
}

// Runs the peer on one tokenizer; returns its JSON report, or sets `error`.
std::optional<fme::Json> run_peer(const std::string& node, const std::string& peer_dir, const std::string& tok_json,
                                  const std::string& texts_path, int passes, std::string& error) {
  const std::string cmd = "RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false UV_THREADPOOL_SIZE=1 " + shell_quote(node) +
                          " " + shell_quote(peer_dir + "/hf_tokenizers_peer.js") + " " + shell_quote(tok_json) + " " +
                          shell_quote(texts_path) + " " + std::to_string(passes) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    error = "popen failed for: " + cmd;
    return std::nullopt;
  }
  std::string out;
  char buf[65536];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  // The report is the last line that parses as a JSON object.
  std::optional<fme::Json> report;
  size_t end = out.size();
  while (end > 0 && !report) {
    size_t start = out.rfind('\n', end - 1);
    start = start == std::string::npos ? 0 : start + 1;
    std::string line = out.substr(start, end - start);
    if (!line.empty() && line[0] == '{') {
      try {
        report = fme::Json::parse(line);
      } catch (const std::exception&) {
      }
    }
    end = start == 0 ? 0 : start - 1;
  }
  if (report && report->contains("error")) {
    error = "peer: " + (*report)["error"].get<std::string>();
    return std::nullopt;
  }
  if (!report || status != 0) {
    std::string tail = out.size() > 600 ? "..." + out.substr(out.size() - 600) : out;
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
    error = "peer exited with status " + std::to_string(status) + (report ? "" : " and no JSON report") +
            (tail.empty() ? "" : ": " + tail);
    return std::nullopt;
  }
  return report;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "bench_tokenizer: MB/s and tokens/s of every shared tokenizer on one thread, fme against Hugging Face "
      "tokenizers (Node binding, peer/hf_tokenizers_peer.js) on the same texts; one JSON line per tokenizer"};
  std::string data = FME_SHARED_DATA;
  int passes = 3;
  std::string only_list;
  std::string node = "node";
  bool no_peer = false;
  app.add_option("data", data, "shared data directory (default: the one the build was configured with)");
  app.add_option("passes", passes, "warm passes after the cold one, fme and peer alike (default 3)")
      ->check(CLI::PositiveNumber);
  app.add_option("--tokenizers", only_list, "comma-separated subset of the folders under DATA/tokenizers (default: all)");
  app.add_option("--node", node, "node executable for the HF peer (default: node on PATH)");
  app.add_flag("--no-peer", no_peer, "skip the HF peer (its fields are null, peer_error says so)");
  CLI11_PARSE(app, argc, argv);
  try {
    const std::string tok_dir = data + "/tokenizers";
    const std::vector<std::string> all = list_tokenizers(tok_dir);
    std::vector<std::string> only;
    for (size_t pos = 0; pos < only_list.size();) {
      size_t c = std::min(only_list.find(',', pos), only_list.size());
      if (c > pos) only.push_back(only_list.substr(pos, c - pos));
      pos = c + 1;
    }
    std::vector<std::string> names;
    if (only.empty()) {
      names = all;
    } else {
      for (const auto& n : only) {
        if (std::find(all.begin(), all.end(), n) == all.end())
          throw fme::ConfigError("--tokenizers: no tokenizer '" + n + "' under " + tok_dir +
                                 " (there are: " + join(all) + ")");
        if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
      }
    }
    if (names.empty()) throw fme::ConfigError("no tokenizer.json under " + tok_dir);

    const std::vector<std::string> texts = load_texts(data + "/text/fineweb-legal-sample");
    size_t bytes = 0;
    for (const auto& t : texts) bytes += t.size();
    const fme::Json cpu = fme::cpu_report();

    // The peer: node, the script and its node_modules; any missing piece becomes peer_error on every line.
    const std::string peer_dir = (fs::path(FME_SOURCE_DIR) / "bench/tokenizer/peer").lexically_normal().string();
    std::string peer_setup_error;
    std::string node_path;
    if (no_peer) {
      peer_setup_error = "skipped (--no-peer)";
    } else if ((node_path = find_node(node)).empty()) {
      peer_setup_error = "node not found ('" + node + "'; scripts/setup.sh installs nodejs)";
    } else if (!fs::exists(peer_dir + "/hf_tokenizers_peer.js")) {
      peer_setup_error = peer_dir + "/hf_tokenizers_peer.js is missing";
    } else if (!fs::exists(peer_dir + "/node_modules/tokenizers/package.json")) {
      peer_setup_error = peer_dir + "/node_modules/tokenizers is missing (run: npm ci --prefix " + peer_dir +
                         ", or scripts/setup.sh)";
    }
    std::optional<TextsFile> texts_file;
    if (peer_setup_error.empty()) texts_file.emplace(texts);

    int failures = 0;
    for (const std::string& name : names) {
      const std::string tok_json = tok_dir + "/" + name + "/tokenizer.json";
      fme::Json j{{"bench", "tokenizer"}, {"tokenizer", name}, {"documents", texts.size()}, {"bytes", bytes},
                  {"threads", 1},         {"passes", passes},  {"add_special_tokens", false}};
      // fme
      std::optional<double> fme_cold, fme_warm;
      std::optional<size_t> fme_tokens;
      std::vector<size_t> fme_doc_tokens;
      std::string fme_ids;
      try {
        auto t0 = std::chrono::steady_clock::now();
        fme::Tokenizer tok = fme::Tokenizer::from_file(tok_dir + "/" + name);
        j["fme_load_s"] = seconds_since(t0);
        double cold = 0, warm = 1e30;
        size_t tokens = 0;
        for (int pass = 0; pass <= passes; ++pass) {
          tokens = 0;
          auto p0 = std::chrono::steady_clock::now();
          for (const auto& t : texts) tokens += tok.encode(t, false).size();
          double s = seconds_since(p0);
          if (pass == 0) cold = s;
          else warm = std::min(warm, s);
        }
        // Untimed: per-text counts and the ids checksum, to compare with the peer's.
        uint32_t h = 2166136261u;
        for (const auto& t : texts) {
          const std::vector<int32_t> ids = tok.encode(t, false);
          for (int32_t id : ids) h = mix(h, static_cast<uint32_t>(id));
          h = mix(h, static_cast<uint32_t>(ids.size()));
          fme_doc_tokens.push_back(ids.size());
        }
        fme_cold = cold;
        fme_warm = warm;
        fme_tokens = tokens;
        fme_ids = hex32(h);
      } catch (const fme::Error& e) {
        j["fme_error"] = e.what();
        ++failures;
      }
      j["fme_tokens"] = fme_tokens ? fme::Json(*fme_tokens) : fme::Json();
      j["fme_mb_per_s_cold"] = fme_cold ? fme::Json(bytes / *fme_cold / 1e6) : fme::Json();
      j["fme_mb_per_s_warm"] = fme_warm ? fme::Json(bytes / *fme_warm / 1e6) : fme::Json();
      j["fme_mtok_per_s_cold"] = fme_cold ? fme::Json(*fme_tokens / *fme_cold / 1e6) : fme::Json();
      j["fme_mtok_per_s_warm"] = fme_warm ? fme::Json(*fme_tokens / *fme_warm / 1e6) : fme::Json();

      // HF peer
      std::string peer_error = peer_setup_error;
      std::optional<fme::Json> peer;
      if (peer_error.empty()) peer = run_peer(node_path, peer_dir, tok_json, texts_file->path, passes, peer_error);
      if (peer && ((*peer)["bytes"].get<size_t>() != bytes || (*peer)["documents"].get<size_t>() != texts.size())) {
        peer_error = "peer read " + (*peer)["documents"].dump() + " texts of " + (*peer)["bytes"].dump() +
                     " bytes, fme " + std::to_string(texts.size()) + " of " + std::to_string(bytes);
        peer.reset();
      }
      const fme::Json null;
      j["hf_tokens"] = peer ? (*peer)["tokens"] : null;
      j["hf_mb_per_s_cold"] = peer ? (*peer)["mb_per_s_cold"] : null;
      j["hf_mb_per_s_warm"] = peer ? (*peer)["mb_per_s_warm"] : null;
      j["hf_mtok_per_s_cold"] = peer ? (*peer)["mtok_per_s_cold"] : null;
      j["hf_mtok_per_s_warm"] = peer ? (*peer)["mtok_per_s_warm"] : null;
      j["hf_batch_mb_per_s_warm"] = peer ? (*peer)["batch_mb_per_s_warm"] : null;
      j["fme_over_hf_cold"] = peer && fme_cold ? fme::Json((*peer)["cold_s"].get<double>() / *fme_cold) : null;
      j["fme_over_hf_warm"] = peer && fme_warm ? fme::Json((*peer)["warm_s"].get<double>() / *fme_warm) : null;
      if (peer && fme_tokens) {
        const auto hf_docs = (*peer)["doc_tokens"].get<std::vector<size_t>>();
        size_t docs_differ = 0;
        int64_t first = -1;
        for (size_t i = 0; i < texts.size(); ++i)
          if (i >= hf_docs.size() || hf_docs[i] != fme_doc_tokens[i]) {
            if (first < 0) first = static_cast<int64_t>(i);
            ++docs_differ;
          }
        j["tokens_equal"] = (*peer)["tokens"].get<size_t>() == *fme_tokens;
        j["ids_equal"] = (*peer)["ids_fnv1a32"].get<std::string>() == fme_ids;
        j["docs_token_count_differ"] = docs_differ;
        if (first >= 0) j["first_differing_doc"] = first;
      } else {
        j["tokens_equal"] = null;
        j["ids_equal"] = null;
      }
      if (peer) {
        j["hf_load_s"] = (*peer)["load_s"];
        j["hf_version"] = (*peer)["hf_version"];
        j["hf_api"] = (*peer)["api"];
        j["node_version"] = (*peer)["node_version"];
      } else {
        j["peer_error"] = peer_error;
      }
      j.update(cpu);
      std::printf("%s\n", j.dump().c_str());
      std::fflush(stdout);
    }
    return failures > 0 ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
}
