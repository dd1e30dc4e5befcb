// What every subcommand file provides: a function that adds its CLI11 subcommand to the app, with a callback
// that runs it. Subcommands throw fme::Error; main() turns exceptions into a one-line error and exit code.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "pipelines/threads.h"  // apply_threads

namespace fme::dist {
class Dist;
}

namespace fme::cli {

void add_forward(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_init(CLI::App& app);
void add_inspect(CLI::App& app);
void add_extract(CLI::App& app);
void add_bench(CLI::App& app);
void add_prepare(CLI::App& app);
void add_train(CLI::App& app);

// The distributed runtime when launched as several processes (or given a mesh); null for one process.
std::shared_ptr<dist::Dist> start_dist(const std::string& mesh, double timeout_s);

// --threads N on `cmd` (default: all cores), applied by fme::apply_threads (pipelines/threads.h).
void add_threads_option(CLI::App* cmd, int* threads);

}  // namespace fme::cli
