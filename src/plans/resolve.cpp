// Resolution of plans into a PlanTable: one traversal of the module list per plan to find each module's
// first matching rule, then the plan's matches applied as one batch to plain parameter descriptions.
// Checks every invariant the torch layer relies on (types, shapes, even splits) so applying the table
// can never fail halfway through a model.
#include "util/shape.h"
#include "plans/resolve.h"

#include <unordered_set>

#include "plans/glob.h"
#include "util/error.h"

namespace fme::plans {

namespace {


// "plan 'tp' line 3: colwise(tp)": the prefix of every message about one rule.
std::string rule_ctx(const Plan& plan, const Rule& rule) {
  return "plan '" + plan.name + "' line " + std::to_string(rule.line) + ": " + rule.transform.to_string();
}

// "a LayerNorm", "an Embedding": messages name the module's type as a noun.
std::string a_type(const std::string& type) {
  bool vowel = !type.empty() && std::string("AEIOUaeiou").find(type[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + type;
}

ParamRow* find_param(ModuleRow& row, const std::string& local_name) {
  for (auto& p : row.params)
    if (p.local_name == local_name) return &p;
  return nullptr;
}

// Applies one rule to one module. `ctx` is rule_ctx(); `mesh` is already checked to have the axis.
class Applier {
 public:
  Applier(const Plan& plan, const Rule& rule, const Mesh& mesh) : plan_(plan), rule_(rule), mesh_(mesh), ctx_(rule_ctx(plan, rule)) {}

  void apply(ModuleRow& row) {
    const Transform& t = rule_.transform;
    switch (t.kind) {
      case TransformKind::Colwise:
      case TransformKind::Rowwise: shard(row); break;
      case TransformKind::Lora: lora(row); break;
      case TransformKind::Freeze:
      case TransformKind::Unfreeze:
        for (auto& p : row.params) p.trainable = t.kind == TransformKind::Unfreeze;
        break;
      case TransformKind::Cast:
        for (auto& p : row.params) p.dtype = t.dtype;
        break;
    }
  }

 private:
  [[noreturn]] void wrong_type(const ModuleRow& row, const char* applies_to) const {
    throw ConfigError(ctx_ + " matched '" + row.path + "', " + a_type(row.type) + "; " +
                      transform_name(rule_.transform.kind) + " applies to " + applies_to);
  }

  // The module's 2-D weight; ShapeError if it is missing or of another rank.
  ParamRow& weight(ModuleRow& row, const char* dims) const {
    ParamRow* w = find_param(row, "weight");
    if (!w)
      throw ShapeError(ctx_ + " matched '" + row.path + "', " + a_type(row.type) + " without a 'weight' parameter; expected " + dims);
    if (w->global_shape.size() != 2)
      throw ShapeError(ctx_ + " matched '" + row.path + "': parameter '" + w->name + "' has shape " +
                       shape_str(w->global_shape) + "; " + a_type(row.type) + " weight must be 2-D " + dims);
    return *w;
  }

  // A Linear's bias, checked against the weight's out features (nullptr if the module has none).
  ParamRow* bias(ModuleRow& row, int64_t out) const {
    ParamRow* b = find_param(row, "bias");
    if (b && (b->global_shape.size() != 1 || b->global_shape[0] != out))
      throw ShapeError(ctx_ + " matched '" + row.path + "': parameter '" + b->name + "' has shape " +
                       shape_str(b->global_shape) + ", expected [" + std::to_string(out) + "] to match the weight");
    return b;
  }

  // Marks dim `dim` of `p` as sharded over the rule's axis (each of `parts` fused blocks alone), after
  // checking the split is even.
  void shard_dim(const ModuleRow& row, ParamRow& p, size_t dim, int64_t parts = 1) const {
    const std::string& axis = rule_.transform.axis;
    int64_t n = mesh_.size(axis);
    if (p.global_shape[dim] % (n * parts) != 0)
      throw ShapeError(ctx_ + " on '" + row.path + "': parameter '" + p.name + "' dim " + std::to_string(dim) +
                       " has size " + std::to_string(p.global_shape[dim]) +
                       (parts > 1 ? " in " + std::to_string(parts) + " fused parts" : std::string()) +
                       ", which mesh axis '" + axis + "' of size " + std::to_string(n) + " does not divide" +
                       (parts > 1 ? " part by part" : ""));
    p.spec.dims[dim] = axis;
    p.parts = parts;
  }

  // A Linear's weight is [out, in], a Conv1D's [in, out].
  static size_t out_dim(const ModuleRow& row) { return row.type == "Conv1D" ? 1 : 0; }
  static const char* weight_dims(const ModuleRow& row) {
    return row.type == "Conv1D" ? "[in_features, out_features]" : "[out_features, in_features]";
  }

  void shard(ModuleRow& row) {
    const Transform& t = rule_.transform;
    bool col = t.kind == TransformKind::Colwise;
    if (row.type != "Linear" && row.type != "Conv1D" && row.type != "Embedding") wrong_type(row, "Linear, Conv1D and Embedding");
    if (row.sharding != Sharding::None) {
      // Name the earlier rule so the user sees which two plans collide.
      std::string earlier;
      for (const auto& m : row.matches)
        if (m && (m->transform.kind == TransformKind::Colwise || m->transform.kind == TransformKind::Rowwise))
          earlier = "plan '" + m->plan + "' line " + std::to_string(m->line) + " (" + m->transform.to_string() + ")";
      throw ConfigError(ctx_ + " matched '" + row.path + "', which " + earlier +
                        " already shards; a module can be sharded by one plan only");
    }
    if (row.type == "Embedding") {
      // Embedding weight [num, dim]: colwise splits the hidden dim, rowwise the vocabulary.
      ParamRow& w = weight(row, "[num_embeddings, embedding_dim]");
      shard_dim(row, w, col ? 1 : 0);
    } else {
      // Linear weight [out, in] (Conv1D [in, out]): colwise splits out (and so the bias), each fused part
      // alone; rowwise splits in and keeps the bias whole, since it is added once after the all-reduce of
      // the partial outputs.
      ParamRow& w = weight(row, weight_dims(row));
      const size_t od = out_dim(row);
      ParamRow* b = bias(row, w.global_shape[od]);
      shard_dim(row, w, col ? od : 1 - od, col ? row.fused_parts : 1);
      if (col && b) shard_dim(row, *b, 0, row.fused_parts);
      // LoRA added by an earlier plan follows the weight: B [out, r] splits like a colwise weight,
      // A [r, in] like a rowwise one, so B·A has the weight's sharding.
      if (col) {
        if (ParamRow* lb = find_param(row, "lora_B"); lb && lb->added_by_lora) shard_dim(row, *lb, 0, row.fused_parts);
      } else {
        if (ParamRow* la = find_param(row, "lora_A"); la && la->added_by_lora) shard_dim(row, *la, 1);
      }
    }
    row.sharding = col ? Sharding::Colwise : Sharding::Rowwise;
    row.shard_axis = t.axis;
  }

  void lora(ModuleRow& row) {
    const Transform& t = rule_.transform;
    if (row.type != "Linear" && row.type != "Conv1D") wrong_type(row, "Linear and Conv1D");
    if (row.lora_r)
      throw ConfigError(ctx_ + " matched '" + row.path + "', which already has LoRA (r=" + std::to_string(*row.lora_r) +
                        ") from an earlier plan; a module can get one LoRA adapter");
    for (const char* n : {"lora_A", "lora_B"})
      if (find_param(row, n))
        throw ConfigError(ctx_ + " matched '" + row.path + "', which already has a parameter named '" + n + "'");
    ParamRow& w = weight(row, weight_dims(row));
    const size_t od = out_dim(row);
    int64_t out = w.global_shape[od], in = w.global_shape[1 - od];
    bias(row, out);
    for (auto& p : row.params) p.trainable = false;  // the base stays frozen; only A and B train

    ParamRow a, b;
    a.name = row.path + ".lora_A";
    a.local_name = "lora_A";
    a.global_shape = {t.r, in};  // A [r, in]
    b.name = row.path + ".lora_B";
    b.local_name = "lora_B";
    b.global_shape = {out, t.r};  // B [out, r]
    for (ParamRow* p : {&a, &b}) {
      p->spec.dims.assign(2, std::nullopt);
      p->dtype = w.dtype;
      p->trainable = true;
      p->added_by_lora = true;
    }
    // On a sharded base, follow the weight (see shard()).
    if (row.sharding == Sharding::Colwise) {
      b.spec.dims[0] = row.shard_axis;
      b.parts = row.fused_parts;
    }
    if (row.sharding == Sharding::Rowwise) a.spec.dims[1] = row.shard_axis;
    row.params.push_back(std::move(a));
    row.params.push_back(std::move(b));
    row.lora_r = t.r;
    row.lora_alpha = t.alpha;
  }

  const Plan& plan_;
  const Rule& rule_;
  const Mesh& mesh_;
  std::string ctx_;
};

}  // namespace

// ---- PartitionSpec, rows, table --------------------------------------------------------------------

bool PartitionSpec::replicated() const {
  for (const auto& d : dims)
    if (d) return false;
  return true;
}

std::string PartitionSpec::to_string() const {
  std::string s = "P(";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + (dims[i] ? "'" + *dims[i] + "'" : std::string("None"));
  return s + ")";
}

int64_t ParamRow::shard_offset(size_t dim, const Mesh& mesh, int64_t rank) const {
  if (dim >= spec.dims.size())
    throw ConfigError("parameter '" + name + "' has " + std::to_string(spec.dims.size()) + " dims; no dim " + std::to_string(dim));
  if (!spec.dims[dim]) return 0;
  const std::string& axis = *spec.dims[dim];
  if (!mesh.has(axis))
    throw ConfigError("parameter '" + name + "' is sharded over mesh axis '" + axis + "', but the mesh has " +
                      (mesh.axes.empty() ? std::string("no axes") : "axes: " + mesh.to_string()));
  return mesh.coord(int(rank), axis) * (local_shape[dim] / parts);
}

bool ModuleRow::transformed() const {
  for (const auto& m : matches)
    if (m) return true;
  return false;
}

const ParamRow* ModuleRow::param(const std::string& local_name) const {
  for (const auto& p : params)
    if (p.local_name == local_name) return &p;
  return nullptr;
}

const ModuleRow* PlanTable::find(const std::string& path) const {
  auto it = by_path.find(path);
  return it == by_path.end() ? nullptr : &modules[it->second];
}

std::vector<const ParamRow*> PlanTable::all_params() const {
  std::vector<const ParamRow*> out;
  for (const auto& m : modules)
    for (const auto& p : m.params) out.push_back(&p);
  return out;
}

// ---- resolve ---------------------------------------------------------------------------------------

PlanTable resolve(const std::vector<ModuleDesc>& modules, const std::vector<Plan>& plans, const Mesh& mesh) {
  mesh.validate();
  PlanTable table;
  table.mesh = mesh;

  // Check the plans against the mesh first, so a typo in an axis is reported even if its rule would
  // match nothing in this model.
  std::unordered_set<std::string> plan_names;
  for (const auto& plan : plans) {
    if (!plan_names.insert(plan.name).second)
      throw ConfigError("plan '" + plan.name + "' (" + plan.source + ") is defined twice; plan names must be unique");
    table.plan_names.push_back(plan.name);
    for (const auto& rule : plan.rules) {
      const Transform& t = rule.transform;
      if ((t.kind == TransformKind::Colwise || t.kind == TransformKind::Rowwise) && !mesh.has(t.axis))
        throw ConfigError(rule_ctx(plan, rule) + " names mesh axis '" + t.axis + "', but the mesh has " +
                          (mesh.axes.empty() ? std::string("no axes") : "axes: " + mesh.to_string()));
    }
  }

  table.modules.reserve(modules.size());
  table.by_path.reserve(modules.size());
  for (const auto& m : modules) {
    if (!table.by_path.emplace(m.path, table.modules.size()).second)
      throw ConfigError("module path '" + m.path + "' appears twice in the module list");
    ModuleRow row;
    row.path = m.path;
    row.type = m.type;
    row.fused_parts = m.fused_parts;
    if (m.fused_parts < 1) throw ConfigError("module '" + m.path + "' has fused_parts " + std::to_string(m.fused_parts));
    row.matches.resize(plans.size());
    std::unordered_set<std::string> names;
    for (const auto& p : m.params) {
      if (!names.insert(p.name).second)
        throw ConfigError("module '" + m.path + "' lists parameter '" + p.name + "' twice");
      ParamRow r;
      r.name = m.path.empty() ? p.name : m.path + "." + p.name;
      r.local_name = p.name;
      r.spec.dims.assign(p.shape.size(), std::nullopt);
      r.global_shape = p.shape;
      r.dtype = p.dtype;
      r.trainable = p.trainable;
      row.params.push_back(std::move(r));
    }
    table.modules.push_back(std::move(row));
  }

  for (size_t pi = 0; pi < plans.size(); ++pi) {
    const Plan& plan = plans[pi];
    // One traversal: each module's first matching rule. Only paths are compared, and paths never change,
    // so matching does not depend on earlier batches; applying does, and sees their results.
    std::vector<std::pair<size_t, size_t>> batch;  // (module index, rule index)
    std::vector<size_t> hits(plan.rules.size(), 0);
    for (size_t mi = 0; mi < table.modules.size(); ++mi) {
      const std::string& path = table.modules[mi].path;
      for (size_t ri = 0; ri < plan.rules.size(); ++ri) {
        if (glob_match(plan.rules[ri].pattern, path)) {
          batch.emplace_back(mi, ri);
          ++hits[ri];
          break;
        }
      }
    }
    for (const auto& [mi, ri] : batch) {
      const Rule& rule = plan.rules[ri];
      ModuleRow& row = table.modules[mi];
      Applier(plan, rule, mesh).apply(row);
      row.matches[pi] = Match{plan.name, rule.pattern, rule.line, rule.transform};
    }
    for (size_t ri = 0; ri < plan.rules.size(); ++ri)
      if (hits[ri] == 0)
        table.unmatched.push_back("plan '" + plan.name + "' line " + std::to_string(plan.rules[ri].line) + ": pattern '" +
                                  plan.rules[ri].pattern + "' matched no module");
  }

  // Local shapes last: every sharded dim was checked to divide evenly when it was sharded.
  for (auto& row : table.modules)
    for (auto& p : row.params) {
      p.local_shape = p.global_shape;
      for (size_t d = 0; d < p.spec.dims.size(); ++d)
        if (p.spec.dims[d]) p.local_shape[d] /= mesh.size(*p.spec.dims[d]);
    }
  return table;
}

}  // namespace fme::plans
