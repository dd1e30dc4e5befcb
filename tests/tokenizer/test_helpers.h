// Shared helpers of the tokenizer tests: the shared tokenizers (loaded once per process), the reference
// documents and HF's ids for them, temporary files.
#pragma once
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "util/file.h"
#include "util/json.h"

namespace tokt {

inline std::string data_dir() { return FME_SHARED_DATA; }

// The shared tokenizer `name` (qwen2.5, qwen3, bert-base-uncased), loaded once.
inline const fme::Tokenizer& shared_tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<fme::Tokenizer>> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    auto t = std::make_unique<fme::Tokenizer>(fme::Tokenizer::from_file(data_dir() + "/tokenizers/" + name));
    it = cache.emplace(name, std::move(t)).first;
  }
  return *it->second;
}

// Every non-empty line of a JSONL file, parsed.
inline std::vector<fme::Json> read_jsonl(const std::string& path) {
  std::vector<fme::Json> out;
  std::string content = fme::read_file(path);
  size_t pos = 0;
  while (pos < content.size()) {
    size_t nl = content.find('\n', pos);
    if (nl == std::string::npos) nl = content.size();
    std::string line = content.substr(pos, nl - pos);
    if (!line.empty()) out.push_back(fme::parse_json(line, path));
    pos = nl + 1;
  }
  return out;
}

// A document file (field "text") with HF's ids for it (X.jsonl + X.token_ids.jsonl).
struct DocFile {
  std::string path;
  std::vector<std::string> texts;
};

inline const std::vector<DocFile>& doc_files() {
  static const std::vector<DocFile> files = [] {
    std::vector<DocFile> out;
    std::vector<std::string> paths;
    for (const auto& dir : std::filesystem::directory_iterator(data_dir() + "/text")) {
      if (!dir.is_directory()) continue;
      for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
        std::string p = f.path().string();
        const std::string ids_suffix = ".token_ids.jsonl";
        if (p.size() > 6 && p.compare(p.size() - 6, 6, ".jsonl") == 0 &&
            !(p.size() > ids_suffix.size() && p.compare(p.size() - ids_suffix.size(), ids_suffix.size(), ids_suffix) == 0))
          paths.push_back(p);
      }
    }
    std::sort(paths.begin(), paths.end());
    for (const auto& p : paths) {
      DocFile d{p, {}};
      for (const auto& j : read_jsonl(p)) d.texts.push_back(j.at("text").get<std::string>());
      out.push_back(std::move(d));
    }
    return out;
  }();
  return files;
}

// HF's ids for every document of `doc` for tokenizer `name`, indexed by document number.
inline std::map<int, std::vector<int32_t>> reference_ids(const DocFile& doc, const std::string& name) {
  std::string ids_path = doc.path.substr(0, doc.path.size() - 6) + ".token_ids.jsonl";
  std::map<int, std::vector<int32_t>> out;
  for (const auto& j : read_jsonl(ids_path))
    if (j.at("tokenizer").get<std::string>() == name) out[j.at("doc").get<int>()] = j.at("ids").get<std::vector<int32_t>>();
  return out;
}

// A fresh directory per test, removed afterwards.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "fme_tok_XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string put(const std::string& name, const std::string& content) const {
    std::string p = path + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
};

}  // namespace tokt
