// Rendering of a PlanTable for `--explain`: aligned text and JSON. Pure formatting; no decisions here.
#include "util/shape.h"
#include "plans/explain.h"

#include <algorithm>
#include <array>

namespace fme::plans {

namespace {


std::string match_str(const Match& m) {
  return m.plan + ":" + std::to_string(m.line) + " " + m.pattern + " -> " + m.transform.to_string();
}

constexpr size_t kColumns = 9;
using Line = std::array<std::string, kColumns>;

}  // namespace

std::string explain_text(const PlanTable& table, const ExplainOptions& options) {
  std::vector<Line> lines;
  lines.push_back({"MODULE", "TYPE", "RULE", "PARAM", "SPEC", "GLOBAL", "LOCAL", "DTYPE", "TRAINABLE"});
  size_t n_listed = 0, n_transformed = 0, n_params = 0, n_trainable = 0, n_added = 0;
  for (const auto& m : table.modules) {
    bool transformed = m.transformed();
    n_transformed += transformed;
    for (const auto& p : m.params) {
      ++n_params;
      n_trainable += p.trainable;
      n_added += p.added_by_lora;
    }
    if (options.only_transformed && !transformed) continue;
    ++n_listed;
    std::vector<std::string> rules;
    for (const auto& match : m.matches)
      if (match) rules.push_back(match_str(*match));
    if (rules.empty()) rules.push_back("-");
    size_t height = std::max<size_t>({rules.size(), m.params.size(), 1});
    for (size_t i = 0; i < height; ++i) {
      Line l;
      if (i == 0) {
        l[0] = m.path.empty() ? "(root)" : m.path;
        l[1] = m.type;
      }
      if (i < rules.size()) l[2] = rules[i];
      if (i < m.params.size()) {
        const ParamRow& p = m.params[i];
        l[3] = p.local_name + (p.added_by_lora ? " (added)" : "");
        l[4] = p.spec.to_string() + (p.parts > 1 ? " per part (" + std::to_string(p.parts) + " fused)" : "");
        l[5] = shape_str(p.global_shape);
        l[6] = shape_str(p.local_shape);
        l[7] = p.dtype;
        l[8] = p.trainable ? "yes" : "no";
      }
      lines.push_back(std::move(l));
    }
  }

  std::array<size_t, kColumns> width{};
  for (const auto& l : lines)
    for (size_t c = 0; c < kColumns; ++c) width[c] = std::max(width[c], l[c].size());

  std::string plans;
  for (const auto& n : table.plan_names) plans += (plans.empty() ? "" : ", ") + n;
  std::string out = "mesh: " + (table.mesh.axes.empty() ? std::string("(no axes)") : table.mesh.to_string()) + " (" + std::to_string(table.mesh.num_ranks()) +
                    " ranks; LOCAL is the same on every rank)\nplans, in order: " + (plans.empty() ? "(none)" : plans) + "\n";
  for (const auto& l : lines) {
    std::string row;
    for (size_t c = 0; c < kColumns; ++c) {
      row += l[c];
      if (c + 1 < kColumns) row += std::string(width[c] - l[c].size() + 2, ' ');
    }
    while (!row.empty() && row.back() == ' ') row.pop_back();
    out += row + "\n";
  }
  out += std::to_string(table.modules.size()) + " modules (" + std::to_string(n_transformed) + " transformed" +
         (options.only_transformed ? ", " + std::to_string(n_listed) + " listed" : std::string()) + "), " +
         std::to_string(n_params) + " parameters (" + std::to_string(n_trainable) + " trainable, " +
         std::to_string(n_added) + " added by LoRA)\n";
  for (const auto& w : table.unmatched) out += "warning: " + w + "\n";
  return out;
}

Json explain_json(const PlanTable& table, const ExplainOptions& options) {
  Json j;
  j["mesh"] = Json::array();
  for (const auto& a : table.mesh.axes) j["mesh"].push_back({{"name", a.name}, {"size", a.size}});
  j["plans"] = table.plan_names;
  j["modules"] = Json::array();
  for (const auto& m : table.modules) {
    if (options.only_transformed && !m.transformed()) continue;
    Json jm = {{"path", m.path}, {"type", m.type}, {"matches", Json::array()}, {"params", Json::array()}};
    for (const auto& match : m.matches)
      if (match)
        jm["matches"].push_back({{"plan", match->plan},
                                 {"line", match->line},
                                 {"pattern", match->pattern},
                                 {"transform", match->transform.to_string()}});
    for (const auto& p : m.params) {
      Json spec = Json::array();
      for (const auto& d : p.spec.dims) spec.push_back(d ? Json(*d) : Json(nullptr));
      jm["params"].push_back({{"name", p.name},
                              {"spec", spec},
                              {"global_shape", p.global_shape},
                              {"local_shape", p.local_shape},
                              {"dtype", p.dtype},
                              {"trainable", p.trainable},
                              {"added_by_lora", p.added_by_lora},
                              {"fused_parts", p.parts}});
    }
    j["modules"].push_back(std::move(jm));
  }
  j["unmatched"] = table.unmatched;
  return j;
}

}  // namespace fme::plans
