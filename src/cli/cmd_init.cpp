// fme init --preset NAME --out DIR [--seed N] [--dtype fp32|bf16] : a random-weight HF-format model directory.
#include <c10/core/ScalarType.h>

#include <iostream>

#include "cli/command.h"
#include "models/tensor_io.h"
#include "models/init.h"
#include "models/presets.h"
#include "pipelines/model_dir.h"

namespace fme::cli {

void add_init(CLI::App& app) {
  struct Opts {
    std::string preset, out, dtype = "fp32";
    uint64_t seed = 0;
    bool list = false;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("init", "Write a random-weight HF-format model directory from a preset");
  auto* preset = cmd->add_option("--preset", o->preset, "preset name (--list shows them)");
  cmd->add_option("--out", o->out, "directory to create");
  cmd->add_option("--seed", o->seed, "random seed");
  cmd->add_option("--dtype", o->dtype, "stored dtype: fp32 | bf16");
  auto* list = cmd->add_flag("--list", o->list, "list the presets");
  preset->excludes(list);
  add_threads_option(cmd, &o->threads);
  cmd->callback([o] {
    if (o->list) {
      for (const auto& p : presets()) std::cout << p.name << "\t" << p.description << "\n";
      return;
    }
    if (o->preset.empty() || o->out.empty()) throw ConfigError("--preset and --out are required (or --list)");
    apply_threads(o->threads);
    const Preset& p = find_preset(o->preset);
    auto dtype = parse_scalar_type(o->dtype, "--dtype", /*allow_fp16=*/false);
    auto model = create_model(p.config, at::TensorOptions().dtype(dtype));
    init_weights(*model, o->seed);
    uint64_t bytes = write_model_dir(*model, o->out, dtype, p.tokenizer);
    std::cout << "wrote " << o->out << " (" << p.name << ", " << bytes << " bytes of weights)\n";
  });
}

}  // namespace fme::cli
