// Applies a resolved PlanTable while the model is built: each parameter is allocated once, at this process's
// local shape, dtype and trainability, and each Linear/Embedding learns its split and its mesh-axis group.
// Also describes a (shape-only) model as the module list that plans resolve over.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dist/process_group.h"
#include "models/build.h"
#include "models/model.h"
#include "plans/resolve.h"
#include "fill/tensor_arena.h"

namespace fme {

// The modules of `model` (built on the meta device) in tree order, with global shapes: what plans match.
std::vector<plans::ModuleDesc> describe_modules(Model& model);

// A Collective over one mesh axis of the distributed runtime.
class AxisCollective : public Collective {
 public:
  AxisCollective(std::shared_ptr<dist::Dist> dist, std::string axis) : dist_(std::move(dist)), axis_(std::move(axis)) {}
  void all_reduce_sum(at::Tensor& x) override { dist_->all_reduce_sum(x, axis_); }
  at::Tensor all_gather_last_dim(const at::Tensor& x) override { return dist_->all_gather(x, -1, axis_); }
  int rank() const override { return dist_->rank(axis_); }
  int size() const override { return dist_->size(axis_); }

 private:
  std::shared_ptr<dist::Dist> dist_;  // collectives keep the runtime alive as long as a module uses them
  std::string axis_;
};

class PlanBuilder : public Builder {
 public:
  // `dist` may be null for a single process (then every axis has size 1).
  // pages: the arena's page size (see arena_ below).
  PlanBuilder(const plans::PlanTable& table, int64_t rank, std::shared_ptr<dist::Dist> dist,
              PageSize pages = PageSize::kSmall);
  // The mapping every local parameter lives in; null when there are no parameters.
  const FreshBuffer* arena() const { return arena_.buffer(); }
  at::Tensor param(const std::string& path, const std::vector<int64_t>& global_shape) override;
  ModuleParallel parallel(const std::string& module_path) override;

 private:
  const plans::PlanTable& table_;
  int64_t rank_;
  std::shared_ptr<dist::Dist> dist_;
  std::map<std::string, const plans::ParamRow*> params_;
  // Every local parameter lives in one fresh anonymous mapping, so init knows its pages are untouched zeros.
  // prepare asks for PageSize::kProbe: the faster page size differs by host (on one VM here 4 KiB pages
  // first-touched at ~5 GB/s and huge pages at ~1 GB/s, on another huge pages were ~1.5x faster), so the
  // arena measures it on its first 64 MiB (FreshBuffer).
  TensorArena arena_;
  std::map<std::string, size_t> slot_;  // parameter name -> its arena slot
  std::map<std::string, std::shared_ptr<AxisCollective>> groups_;
};

}  // namespace fme
