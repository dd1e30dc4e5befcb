// fme: the command-line entry point. Each subcommand lives in its own file (cli/cmd_*.cpp); this file only
// builds the app and maps errors to exit codes: 0 success, 1 an error fme diagnosed, 2 bad usage.
#include <c10/util/Exception.h>

#include <csignal>
#include <iostream>

#include "cli/command.h"
#include "util/error.h"

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) would kill the process mid-write; ignored, the write fails with EFBIG and
  // becomes an IoError with a clear message, and the run stays resumable.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"fme: prepare transformer models and extract their activations"};
  app.set_version_flag("--version", std::string(FME_VERSION));
  app.require_subcommand(1);
  fme::cli::add_init(app);
  fme::cli::add_inspect(app);
  fme::cli::add_tokenize(app);
  fme::cli::add_forward(app);
  fme::cli::add_extract(app);
  fme::cli::add_prepare(app);
  fme::cli::add_train(app);
  fme::cli::add_bench(app);

  auto fail = [&](const std::string& msg) {
    std::string name = app.get_subcommands().empty() ? "fme" : "fme " + app.get_subcommands().front()->get_name();
    std::cerr << name << ": error: " << msg << "\n";
    return 1;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const fme::Error& e) {
    return fail(e.what());
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return 0;
}
