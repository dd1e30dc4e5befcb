// fme tokenize --tokenizer DIR [--no-special-tokens] [--text-field F] < in.jsonl > out.jsonl
// One output line {"ids":[...]} per input line, in order.
#include <iostream>
#include <string>

#include "cli/command.h"
#include "tokenizer/tokenizer.h"
#include "util/json.h"

namespace fme::cli {

void add_tokenize(CLI::App& app) {
  struct Opts {
    std::string tokenizer, field = "text";
    bool no_special = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Tokenize JSONL text on stdin to {\"ids\":[...]} lines on stdout");
  cmd->add_option("--tokenizer", o->tokenizer, "directory holding tokenizer.json (or the file)")->required();
  cmd->add_flag("--no-special-tokens", o->no_special, "do not add the post-processor's special tokens");
  cmd->add_option("--text-field", o->field, "JSON field holding the text");
  cmd->callback([o] {
    Tokenizer tok = Tokenizer::from_file(o->tokenizer);
    std::ios::sync_with_stdio(false);
    std::string line, out;
    for (int64_t n = 1; std::getline(std::cin, line); ++n) {
      const std::string where = "stdin line " + std::to_string(n);
      Json j = parse_json(line, where);
      const std::string text = require<std::string>(j, o->field, where);
      std::vector<int32_t> ids = tok.encode(text, !o->no_special);
      out.assign("{\"ids\":[");
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(ids[i]);
      }
      out += "]}\n";
      std::cout << out;
    }
    std::cout.flush();
    if (!std::cout) throw IoError("stdout: write failed");
  });
}

}  // namespace fme::cli
