#include "pipelines/train/lora_adapters.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <filesystem>
#include <map>
#include <set>

#include "models/layers.h"
#include "models/tensor_io.h"
#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

struct Adapted {
  std::string path;     // module path in the model
  std::string hf_path;  // the module's path in the HF checkpoint (what PEFT names it by)
  LinearImpl* lin;
};

std::vector<Adapted> adapted(Model& model) {
  std::vector<Adapted> out;
  for (const auto& item : model.module().named_modules("", /*include_self=*/false)) {
    auto* lin = item.value()->as<LinearImpl>();  // Conv1D too
    if (!lin || !lin->lora_A.defined()) continue;
    std::string hf = model.checkpoint_name(item.key() + ".weight");
    hf.resize(hf.size() - std::string(".weight").size());
    out.push_back({item.key(), hf, lin});
  }
  return out;
}

std::string last_name(const std::string& path) { return path.substr(path.rfind('.') + 1); }

}  // namespace

int64_t count_lora_modules(Model& model) { return static_cast<int64_t>(adapted(model).size()); }

void write_peft_adapters(Model& model, const std::string& dir, const std::string& base_model,
                         const std::map<std::string, at::Tensor>* whole) {
  const std::vector<Adapted> mods = adapted(model);
  if (mods.empty()) throw ConfigError("--save-adapters: the model has no LoRA adapters (add a lora(r=, alpha=) rule with --plan)");
  // The most common (r, alpha) is the config's; the others go to PEFT's per-module patterns.
  std::map<std::pair<int64_t, double>, int> counts;
  for (const auto& m : mods) ++counts[{m.lin->par.lora_r, m.lin->par.lora_alpha}];
  const auto common = std::max_element(counts.begin(), counts.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
  std::set<std::string> targets;
  Json rank_pattern = Json::object(), alpha_pattern = Json::object();
  bool fan_in_fan_out = false;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& m : mods) {
    targets.insert(last_name(m.hf_path));
    if (m.lin->par.lora_r != common.first) rank_pattern[m.hf_path] = m.lin->par.lora_r;
    if (m.lin->par.lora_alpha != common.second) alpha_pattern[m.hf_path] = m.lin->par.lora_alpha;
    fan_in_fan_out = fan_in_fan_out || m.lin->in_out;
    const at::Tensor& a = whole ? whole->at(m.path + ".lora_A") : m.lin->lora_A;
    const at::Tensor& b = whole ? whole->at(m.path + ".lora_B") : m.lin->lora_B;
    tensors.emplace_back("base_model.model." + m.hf_path + ".lora_A.weight", a.detach().to(at::kFloat));
    tensors.emplace_back("base_model.model." + m.hf_path + ".lora_B.weight", b.detach().to(at::kFloat));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir + ": cannot create directory: " + ec.message());
  write_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  const std::string family = model.model_type();
  Json config{{"peft_type", "LORA"},
              {"task_type", family == "bert" ? Json() : Json("CAUSAL_LM")},
              {"base_model_name_or_path", base_model},
              {"r", common.first},
              {"lora_alpha", common.second},
              {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
              {"rank_pattern", rank_pattern},
              {"alpha_pattern", alpha_pattern},
              {"lora_dropout", 0.0},
              {"bias", "none"},
              {"fan_in_fan_out", fan_in_fan_out},
              {"use_rslora", false},
              {"init_lora_weights", true},
              {"modules_to_save", Json()},
              {"inference_mode", true}};
  write_file_atomic((fs::path(dir) / "adapter_config.json").string(), config.dump(2) + "\n");
}

void merge_lora_into_weights(Model& model, std::map<std::string, at::Tensor>* whole) {
  at::NoGradGuard no_grad;
  for (const auto& m : adapted(model)) {
    LinearImpl& lin = *m.lin;
    const at::Tensor A = whole ? whole->at(m.path + ".lora_A") : lin.lora_A;
    const at::Tensor B = whole ? whole->at(m.path + ".lora_B") : lin.lora_B;
    // delta (out, in) = B (out, r) A (r, in) * alpha / r, in fp32, added to W in its own dtype.
    const at::Tensor delta = at::matmul(B.to(at::kFloat), A.to(at::kFloat)) * (lin.par.lora_alpha / static_cast<double>(lin.par.lora_r));
    if (whole) {
      at::Tensor& W = whole->at(m.path + ".weight");
      W = (W.to(at::kFloat) + (lin.in_out ? delta.t() : delta)).to(W.scalar_type());
      whole->at(m.path + ".lora_B") = at::zeros_like(B);
      continue;
    }
    lin.weight.copy_(lin.weight.to(at::kFloat) + (lin.in_out ? delta.t() : delta));
    lin.lora_B.zero_();
  }
}

}  // namespace fme
