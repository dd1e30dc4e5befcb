// The plan-file parser and the built-in plans. The format is line based (one rule per line) so every
// error can point at a line and column; docs/plans.md is the user-facing description.
#include "plans/plan.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>

#include "util/error.h"
#include "util/file.h"

namespace fme::plans {

namespace {

constexpr const char* kKnownTransforms = "colwise, rowwise, lora, freeze, unfreeze, cast";
constexpr const char* kKnownDtypes = "fp32, bf16, fp16";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }
bool is_ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool is_name_char(char c) { return is_ident_char(c) || c == '-' || c == '.'; }

// One argument inside the parentheses: `value` or `key=value`. Columns are 1-based, for messages.
struct Arg {
  std::string key;
  int key_col = 0;
  std::string value;
  int value_col = 0;
};

// Parses one line at a time; every error names the source, the line and a column.
class LineParser {
 public:
  LineParser(const std::string& what, int line, const std::string& text) : what_(what), line_(line), s_(text) {}

  [[noreturn]] void fail(size_t pos, const std::string& msg) const {
    throw ConfigError(what_ + ":" + std::to_string(line_) + ":" + std::to_string(pos + 1) + ": " + msg);
  }

  void skip_space() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }
  bool at_end() const { return pos_ >= s_.size(); }
  size_t pos() const { return pos_; }

  // The next run of non-space characters (possibly empty at end of line).
  std::string word() {
    size_t start = pos_;
    while (pos_ < s_.size() && !is_space(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }

  // Everything from the current position to the end, trimmed, for "unexpected text" messages.
  std::string rest() const {
    std::string r = s_.substr(pos_);
    while (!r.empty() && is_space(r.back())) r.pop_back();
    return r;
  }

  Transform transform(const std::string& pattern) {
    size_t after_pattern = pos_;
    skip_space();
    if (at_end())
      fail(after_pattern, "expected a transform after pattern '" + pattern + "' (one of: " + kKnownTransforms + ")");
    size_t name_pos = pos_;
    while (pos_ < s_.size() && is_ident_char(s_[pos_])) ++pos_;
    std::string name = s_.substr(name_pos, pos_ - name_pos);
    if (name.empty())
      fail(name_pos, "expected a transform name, found '" + std::string(1, s_[name_pos]) + "'; known transforms: " +
                         kKnownTransforms);
    Transform t;
    if (name == "colwise") t.kind = TransformKind::Colwise;
    else if (name == "rowwise") t.kind = TransformKind::Rowwise;
    else if (name == "lora") t.kind = TransformKind::Lora;
    else if (name == "freeze") t.kind = TransformKind::Freeze;
    else if (name == "unfreeze") t.kind = TransformKind::Unfreeze;
    else if (name == "cast") t.kind = TransformKind::Cast;
    else fail(name_pos, "unknown transform '" + name + "'; known transforms: " + kKnownTransforms);

    skip_space();
    bool has_parens = !at_end() && s_[pos_] == '(';
    std::vector<Arg> args;
    size_t args_pos = pos_;  // where the argument list (or its absence) is, for messages
    if (has_parens) args = arg_list();
    skip_space();
    if (!at_end()) {
      if (!has_parens && t.kind != TransformKind::Freeze && t.kind != TransformKind::Unfreeze)
        fail(pos_, "expected '(' after '" + name + "', found '" + rest() + "'");
      fail(pos_, "unexpected text after the transform: '" + rest() + "'");
    }

    switch (t.kind) {
      case TransformKind::Colwise:
      case TransformKind::Rowwise: {
        if (!has_parens) fail(args_pos, "missing '(': " + name + " needs a mesh axis, e.g. " + name + "(tp)");
        if (args.size() != 1)
          fail(args_pos, name + " takes exactly one argument (a mesh axis), found " + std::to_string(args.size()));
        const Arg& a = args[0];
        if (!a.key.empty() && a.key != "axis") fail(a.key_col - 1, "unknown argument '" + a.key + "' for " + name + "; expected 'axis'");
        for (char c : a.value)
          if (!is_ident_char(c)) fail(a.value_col - 1, "bad mesh axis name '" + a.value + "': expected letters, digits or '_'");
        t.axis = a.value;
        break;
      }
      case TransformKind::Lora: {
        if (!has_parens) fail(args_pos, "missing '(': lora needs a rank and alpha, e.g. lora(r=8, alpha=16)");
        bool have_r = false, have_alpha = false;
        for (size_t i = 0; i < args.size(); ++i) {
          const Arg& a = args[i];
          std::string key = a.key;
          if (key.empty()) {  // positional: lora(8, 16) means r=8, alpha=16
            if (i > 1) fail(a.value_col - 1, "lora takes two arguments (r, alpha), found " + std::to_string(args.size()));
            key = i == 0 ? "r" : "alpha";
          }
          if (key == "r") {
            if (have_r) fail(a.key_col - 1, "argument 'r' given twice");
            have_r = true;
            t.r = parse_int(a, "r");
            if (t.r <= 0) fail(a.value_col - 1, "lora r must be > 0, got " + a.value);
          } else if (key == "alpha") {
            if (have_alpha) fail(a.key_col - 1, "argument 'alpha' given twice");
            have_alpha = true;
            t.alpha = parse_number(a, "alpha");
            if (!(t.alpha > 0)) fail(a.value_col - 1, "lora alpha must be > 0, got " + a.value);
          } else {
            fail(a.key_col - 1, "unknown argument '" + a.key + "' for lora; expected 'r' and 'alpha'");
          }
        }
        if (!have_r) fail(args_pos, "lora is missing argument 'r' (the rank), e.g. lora(r=8, alpha=16)");
        if (!have_alpha) fail(args_pos, "lora is missing argument 'alpha', e.g. lora(r=8, alpha=16)");
        break;
      }
      case TransformKind::Cast: {
        if (!has_parens) fail(args_pos, "missing '(': cast needs a dtype, e.g. cast(bf16)");
        if (args.size() != 1)
          fail(args_pos, "cast takes exactly one argument (a dtype), found " + std::to_string(args.size()));
        const Arg& a = args[0];
        if (!a.key.empty() && a.key != "dtype") fail(a.key_col - 1, "unknown argument '" + a.key + "' for cast; expected 'dtype'");
        if (a.value != "fp32" && a.value != "bf16" && a.value != "fp16")
          fail(a.value_col - 1, "unknown dtype '" + a.value + "'; known dtypes: " + kKnownDtypes);
        t.dtype = a.value;
        break;
      }
      case TransformKind::Freeze:
      case TransformKind::Unfreeze:
        if (!args.empty()) fail(args_pos, name + " takes no arguments, found " + std::to_string(args.size()));
        break;
    }
    return t;
  }

 private:
  // Parses "( arg, arg, ... )" starting at '('. `()` yields no arguments.
  std::vector<Arg> arg_list() {
    size_t open = pos_++;
    std::vector<Arg> args;
    skip_space();
    if (!at_end() && s_[pos_] == ')') {
      ++pos_;
      return args;
    }
    for (;;) {
      Arg a;
      skip_space();
      std::string first = token();
      size_t first_pos = pos_ - first.size();
      skip_space();
      if (!at_end() && s_[pos_] == '=') {
        if (first.empty()) fail(pos_, "expected an argument name before '='");
        a.key = first;
        a.key_col = int(first_pos) + 1;
        ++pos_;
        skip_space();
        a.value = token();
        a.value_col = int(pos_ - a.value.size()) + 1;
        if (a.value.empty()) fail(pos_, "expected a value for argument '" + a.key + "'");
        skip_space();
      } else {
        a.value = first;
        a.value_col = int(first_pos) + 1;
        a.key_col = a.value_col;
        if (a.value.empty()) {
          if (at_end()) fail(pos_, "missing ')' to close the '(' at column " + std::to_string(open + 1));
          fail(pos_, "expected an argument, found '" + std::string(1, s_[pos_]) + "'");
        }
      }
      args.push_back(a);
      if (at_end()) fail(pos_, "missing ')' to close the '(' at column " + std::to_string(open + 1));
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ')') {
        ++pos_;
        return args;
      }
      fail(pos_, "expected ',' or ')', found '" + std::string(1, s_[pos_]) + "'");
    }
  }

  // A value or key: a run of characters other than space and the punctuation ",()=".
  std::string token() {
    size_t start = pos_;
    while (pos_ < s_.size() && !is_space(s_[pos_]) && s_[pos_] != ',' && s_[pos_] != '(' && s_[pos_] != ')' &&
           s_[pos_] != '=')
      ++pos_;
    return s_.substr(start, pos_ - start);
  }

  int64_t parse_int(const Arg& a, const char* key) const {
    const std::string& v = a.value;
    size_t i = (v[0] == '-' || v[0] == '+') ? 1 : 0;
    bool ok = i < v.size() && v.size() - i <= 18;  // 18 digits cannot overflow int64
    for (size_t j = i; ok && j < v.size(); ++j) ok = v[j] >= '0' && v[j] <= '9';
    if (!ok) fail(a.value_col - 1, std::string("bad number '") + v + "' for " + key + ": expected an integer");
    return std::stoll(v);
  }

  double parse_number(const Arg& a, const char* key) const {
    const std::string& v = a.value;
    char* end = nullptr;
    errno = 0;
    double d = std::strtod(v.c_str(), &end);
    if (end != v.c_str() + v.size() || errno == ERANGE || !std::isfinite(d))
      fail(a.value_col - 1, std::string("bad number '") + v + "' for " + key + ": expected a number such as 16 or 0.5");
    return d;
  }

  const std::string& what_;
  int line_;
  const std::string& s_;
  size_t pos_ = 0;
};

// The decoder family's tensor-parallel plan (llama, mistral, qwen2, qwen3).
constexpr const char* kDecoderTp =
    "# Tensor-parallel plan of the decoder family (llama, mistral, qwen2, qwen3): the Megatron split with\n"
    "# their shared Hugging Face module names; Qwen3's q_norm/k_norm act per head and stay replicated.\n"
    "plan tp\n"
    "*.self_attn.q_proj   colwise(tp)\n"
    "*.self_attn.k_proj   colwise(tp)\n"
    "*.self_attn.v_proj   colwise(tp)\n"
    "*.self_attn.o_proj   rowwise(tp)\n"
    "*.mlp.gate_proj      colwise(tp)\n"
    "*.mlp.up_proj        colwise(tp)\n"
    "*.mlp.down_proj      rowwise(tp)\n";

const std::map<std::string, std::string>& builtins() {
  static const std::map<std::string, std::string> b = {
      {"bert-tp",
       "# The seed's BERT tensor-parallel plan (Megatron style): q, k, v and the MLP's first projection are\n"
       "# split by output features, the two output projections by input features, so each attention block\n"
       "# and each MLP needs one all-reduce. `*.output.dense` matches both attention.output.dense and\n"
       "# output.dense: 6 transforms per layer.\n"
       "plan tp\n"
       "*.attention.self.query   colwise(tp)\n"
       "*.attention.self.key     colwise(tp)\n"
       "*.attention.self.value   colwise(tp)\n"
       "*.intermediate.dense     colwise(tp)\n"
       "*.output.dense           rowwise(tp)\n"},
      {"decoder-tp", kDecoderTp},
      {"gpt2-tp",
       "# GPT-2's tensor-parallel plan (Megatron style) over its HF Conv1D modules: the fused c_attn is split\n"
       "# by output features within each of its q, k and v parts, so a process holds whole heads of all three;\n"
       "# the two output projections (attn.c_proj, mlp.c_proj) by input features.\n"
       "plan tp\n"
       "*.attn.c_attn   colwise(tp)\n"
       "*.attn.c_proj   rowwise(tp)\n"
       "*.mlp.c_fc      colwise(tp)\n"
       "*.mlp.c_proj    rowwise(tp)\n"},
      // The same plan under each decoder's own name.
      {"llama-tp", kDecoderTp},
      {"qwen2-tp", kDecoderTp},
      {"qwen3-tp", kDecoderTp},
  };
  return b;
}

std::string format_number(double d) {
  std::ostringstream os;
  os.precision(10);
  os << d;
  return os.str();
}

}  // namespace

const char* transform_name(TransformKind kind) {
  switch (kind) {
    case TransformKind::Colwise: return "colwise";
    case TransformKind::Rowwise: return "rowwise";
    case TransformKind::Lora: return "lora";
    case TransformKind::Freeze: return "freeze";
    case TransformKind::Unfreeze: return "unfreeze";
    case TransformKind::Cast: return "cast";
  }
  return "?";
}

std::string Transform::to_string() const {
  std::string name = transform_name(kind);
  switch (kind) {
    case TransformKind::Colwise:
    case TransformKind::Rowwise: return name + "(" + axis + ")";
    case TransformKind::Lora: return "lora(r=" + std::to_string(r) + ", alpha=" + format_number(alpha) + ")";
    case TransformKind::Cast: return "cast(" + dtype + ")";
    default: return name;
  }
}

std::vector<Plan> parse_plans(const std::string& text, const std::string& what) {
  std::vector<Plan> plans;
  std::map<std::string, int> plan_lines;     // plan name -> header line, for duplicate messages
  std::map<std::string, int> pattern_lines;  // pattern -> line within the current plan
  int name_col = 0;                          // column of the current plan's name, for "no rules"
  auto close_plan = [&]() {
    if (!plans.empty() && plans.back().rules.empty())
      throw ConfigError(what + ":" + std::to_string(plans.back().line) + ":" + std::to_string(name_col) +
                        ": plan '" + plans.back().name + "' has no rules");
  };

  size_t start = 0;
  int line_no = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(start, nl - start);
    start = nl + 1;
    ++line_no;
    // `#` starts a comment anywhere: module paths never contain it.
    if (size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);

    LineParser p(what, line_no, line);
    p.skip_space();
    if (p.at_end()) continue;
    size_t first_pos = p.pos();
    std::string first = p.word();

    if (first == "plan") {
      close_plan();
      p.skip_space();
      size_t pos = p.pos();
      std::string name = p.word();
      if (name.empty()) p.fail(pos, "expected a plan name after 'plan'");
      for (char c : name)
        if (!is_name_char(c)) p.fail(pos, "bad plan name '" + name + "': expected letters, digits, '_', '-' or '.'");
      p.skip_space();
      if (!p.at_end()) p.fail(p.pos(), "unexpected text after the plan name: '" + p.rest() + "'");
      if (auto it = plan_lines.find(name); it != plan_lines.end())
        p.fail(pos, "duplicate plan name '" + name + "' (first defined at line " + std::to_string(it->second) + ")");
      plan_lines[name] = line_no;
      pattern_lines.clear();
      name_col = int(pos) + 1;
      plans.push_back(Plan{name, what, line_no, {}});
      continue;
    }

    if (plans.empty())
      p.fail(first_pos, "rule '" + first + "' comes before any 'plan <name>' line; start the file with e.g. 'plan tp'");
    Rule rule;
    rule.pattern = first;
    rule.line = line_no;
    rule.column = int(first_pos) + 1;
    rule.transform = p.transform(first);
    if (auto it = pattern_lines.find(first); it != pattern_lines.end())
      p.fail(first_pos, "pattern '" + first + "' already has a rule at line " + std::to_string(it->second) +
                            " of plan '" + plans.back().name + "'; the first matching rule wins, so this one would never apply");
    pattern_lines[first] = line_no;
    plans.back().rules.push_back(std::move(rule));
  }
  close_plan();
  return plans;
}

std::vector<std::string> builtin_plan_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : builtins()) names.push_back(name);
  return names;
}

const std::string& builtin_plan_text(const std::string& name) {
  auto it = builtins().find(name);
  if (it == builtins().end()) {
    std::string known;
    for (const auto& n : builtin_plan_names()) known += (known.empty() ? "builtin:" : ", builtin:") + n;
    throw ConfigError("unknown built-in plan 'builtin:" + name + "'; known: " + known);
  }
  return it->second;
}

std::vector<Plan> load_plans(const std::string& path) {
  const std::string prefix = "builtin:";
  if (path.compare(0, prefix.size(), prefix) == 0) {
    std::string name = path.substr(prefix.size());
    return parse_plans(builtin_plan_text(name), path);
  }
  return parse_plans(read_file(path), path);
}

}  // namespace fme::plans
