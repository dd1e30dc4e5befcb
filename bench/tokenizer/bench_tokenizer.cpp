// Tokenizer throughput: encodes the "text" fields of text/fineweb-legal-sample/*.jsonl with qwen2.5 and
// bert-base-uncased and prints, per tokenizer, MB/s and tokens/s on one thread: "cold" is the first pass of a
// freshly loaded tokenizer (empty word cache), "warm" the best of the following passes.
// Usage: bench_tokenizer [shared-data-dir] [passes] (--help)  (default: the FME_SHARED_DATA the build was configured with)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "tokenizer/tokenizer.h"
#include "util/cpu_features.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<std::string> load_texts(const std::string& dir) {
  std::vector<std::string> paths;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_tokenizer: MB/s and tokens/s of the qwen2.5 and bert-base-uncased tokenizers on one thread"};
  std::string data = FME_SHARED_DATA;
  int passes = 3;
  app.add_option("data", data, "shared data directory (default: the one the build was configured with)");
  app.add_option("passes", passes, "warm passes after the cold one (default 3)")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    std::vector<std::string> texts = load_texts(data + "/text/fineweb-legal-sample");
    size_t bytes = 0;
    for (const auto& t : texts) bytes += t.size();
    const fme::Json cpu = fme::cpu_report();
    std::printf("%zu documents, %.2f MB; CPU %s (%s), 1 thread\n", texts.size(), bytes / 1e6,
                cpu["cpu"].get<std::string>().c_str(), fme::cpu_features().isa_summary().c_str());
    for (const char* name : {"qwen2.5", "bert-base-uncased"}) {
      auto t0 = std::chrono::steady_clock::now();
      fme::Tokenizer tok = fme::Tokenizer::from_file(data + "/tokenizers/" + name);
      double load = seconds_since(t0);
      double cold = 0, warm = 1e30;
      size_t tokens = 0;
      for (int pass = 0; pass <= passes; ++pass) {
        tokens = 0;
        auto p0 = std::chrono::steady_clock::now();
        for (const auto& t : texts) tokens += tok.encode(t).size();
        double s = seconds_since(p0);
        if (pass == 0) cold = s;
        else warm = std::min(warm, s);
      }
      std::printf("%-18s cold %6.2f MB/s %6.2f Mtok/s | warm %6.2f MB/s %6.2f Mtok/s | %zu tokens, load %.2f s\n",
                  name, bytes / cold / 1e6, tokens / cold / 1e6, bytes / warm / 1e6, tokens / warm / 1e6, tokens, load);
    }
    return 0;
  } catch (const fme::Error& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
}
