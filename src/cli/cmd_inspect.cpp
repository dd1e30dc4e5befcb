// fme inspect DIR : the module tree of a model directory, with each parameter's shape, stored dtype and count.
#include <torch/nn/module.h>

#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "util/shape.h"
#include "cli/command.h"
#include "formats/checkpoint.h"
#include "models/loader.h"
#include "models/model.h"

namespace fme::cli {
namespace {

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n), o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) o += ',';
    o += s[i];
  }
  return o;
}


void print_tree(const std::string& path, const std::string& label, torch::nn::Module& m, int depth,
                const Checkpoint& ckpt, const CheckpointNameMap& stored_name, std::set<std::string>& shown) {
  int64_t total = 0;
  for (const auto& p : m.parameters(true)) total += p.numel();
  const std::string indent(2 * depth, ' ');
  std::cout << std::left << std::setw(56) << (indent + label) << std::right << std::setw(16) << with_commas(total)
            << "\n";
  for (const auto& item : m.named_parameters(/*recurse=*/false)) {
    const std::string full = path.empty() ? item.key() : path + "." + item.key();
    const std::string stored = stored_name(full);
    const auto* e = ckpt.find(stored);
    std::string dtype = e ? std::string(dtype_name(e->info->dtype)) : "(missing)";
    shown.insert(stored);
    std::ostringstream line;
    line << std::left << std::setw(34) << (indent + "  " + item.key()) << std::setw(16) << shape_str(item.value().sizes())
         << std::setw(6) << dtype << std::right << std::setw(16) << with_commas(item.value().numel());
    std::cout << line.str() << "\n";
  }
  for (const auto& child : m.named_children())
    print_tree(path.empty() ? child.key() : path + "." + child.key(), child.key(), *child.value(), depth + 1, ckpt,
               stored_name, shown);
}

}  // namespace

void add_inspect(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("inspect", "Print a model's module tree with shapes, dtypes and parameter counts");
  cmd->add_option("dir", *dir, "HF-format model directory")->required();
  cmd->callback([dir] {
    Checkpoint ckpt = Checkpoint::open(*dir);  // headers only: the tree is printed without reading weights
    ModelConfig config = load_model_config(*dir, ckpt);
    auto model = create_model(config, at::TensorOptions().device(at::kMeta));  // shapes only, no memory
    int64_t total = 0;
    for (auto& [name, p] : model->named_parameters()) total += p.numel();
    std::cout << model->model_type() << " model at " << *dir << ": " << model->num_layers() << " layers, hidden "
              << model->hidden_size() << ", vocab " << model->vocab_size() << ", " << with_commas(total)
              << " parameters\n";
    for (const auto& [alias, target] : model->tied_parameters())
      std::cout << "tied: " << alias << " = " << target << "\n";
    const CheckpointNameMap stored_name(*model, ckpt);
    for (const auto& r : stored_name.renames()) std::cout << "checkpoint names: " << r << "\n";
    std::set<std::string> shown;
    print_tree("", "(root)", model->module(), 0, ckpt, stored_name, shown);
    // What else the checkpoint holds: heads fme does not build, buffers it computes, tied copies.
    for (const auto& [name, entry] : ckpt.tensors()) {
      if (shown.count(name)) continue;
      std::cout << "not loaded: " << name << " " << shape_str(entry.info->shape) << " "
                << dtype_name(entry.info->dtype) << (stored_name.ignored(name) ? " (not part of this model)" : "") << "\n";
    }
  });
}

}  // namespace fme::cli
