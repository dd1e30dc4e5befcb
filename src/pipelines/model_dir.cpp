#include "pipelines/model_dir.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "models/tensor_io.h"
#include "util/compress.h"
#include "util/error.h"
#include "util/file.h"

namespace fs = std::filesystem;

namespace fme {

std::string assets_dir() {
  if (const char* env = std::getenv("FME_ASSETS"); env && *env) return env;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const fs::path& cand : {exe.parent_path() / "../share/fme/assets", exe.parent_path() / "../../assets"})
      if (fs::is_directory(cand / "tokenizers", ec)) return fs::weakly_canonical(cand).string();
  }
  return FME_SOURCE_ASSETS;
}

void write_tokenizer_files(const std::string& name, const std::string& dir) {
  fs::path src = fs::path(assets_dir()) / "tokenizers" / name;
  if (!fs::is_directory(src)) throw IoError(src.string() + ": tokenizer assets not found (set FME_ASSETS)");
  for (const auto& entry : fs::directory_iterator(src)) {
    std::string file = entry.path().filename().string();
    std::string content = read_file(entry.path().string());
    if (entry.path().extension() == ".zst") {
      content = zstd_decompress(content, entry.path().string());
      file = file.substr(0, file.size() - 4);
    }
    write_file_atomic((fs::path(dir) / file).string(), content);
  }
}

uint64_t write_model_dir(Model& model, const std::string& dir, at::ScalarType dtype, const std::string& tokenizer_name,
                         const std::map<std::string, at::Tensor>* whole) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec))
    throw IoError(dir + ": exists and is not empty; refusing to overwrite a model directory");
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir + ": cannot create directory: " + ec.message());

  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& [name, p] : model.named_parameters()) {
    // LoRA adapters are not part of an HF model's weights: they are saved as PEFT adapters (or merged first).
    if (name.size() > 7 && (name.compare(name.size() - 7, 7, ".lora_A") == 0 || name.compare(name.size() - 7, 7, ".lora_B") == 0)) continue;
    const at::Tensor& t = whole ? whole->at(name) : p;
    tensors.emplace_back(model.checkpoint_name(name), t.detach().to(dtype));
  }
  uint64_t bytes = write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});

  Json config = to_json(model.config());
  config["torch_dtype"] = dtype == at::kBFloat16 ? "bfloat16" : "float32";
  write_file_atomic((fs::path(dir) / "config.json").string(), config.dump(2) + "\n");
  if (!tokenizer_name.empty()) write_tokenizer_files(tokenizer_name, dir);
  return bytes;
}

}  // namespace fme
