// How a model's parameters come to exist. Model constructors ask a Builder for each parameter by its HF path
// and global shape; the Builder returns the tensor to register — whole or this process's shard, in the dtype,
// device and trainability that plans decided — and tells each Linear/Embedding how it is split over the mesh.
// So a model is built once, directly in its final form: never allocated whole and then sliced.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace fme {

// Collectives a tensor-parallel module needs, over its mesh axis (implemented by the distributed runtime).
struct Collective {
  virtual ~Collective() = default;
  virtual void all_reduce_sum(at::Tensor& x) = 0;                // in place, over the axis group
  virtual at::Tensor all_gather_last_dim(const at::Tensor& x) = 0;  // [..., d] -> [..., d * group size]
  virtual int rank() const = 0;                                   // position in the axis group
  virtual int size() const = 0;
};

enum class Split { None, Colwise, Rowwise };

// How one Linear or Embedding runs. Linear weight [out, in]: colwise holds out/size rows (local outputs),
// rowwise in/size columns (partial sums, all-reduced). Embedding [V, H]: colwise holds H/size columns,
// rowwise V/size rows.
struct ModuleParallel {
  Split split = Split::None;
  std::shared_ptr<Collective> group;  // required when split != None; the module keeps it alive
  std::string axis;                   // the mesh axis split over (for messages)
  int64_t lora_r = 0;           // > 0: LoRA adapters lora_A [r, in] and lora_B [out, r]
  double lora_alpha = 0;
};

// Where a parameter's local tensor sits in its global tensor (for initialisation by global element index).
// With parts > 1 the global dim is that many equal fused blocks (q, k, v) split alone: the local tensor holds
// `parts` runs, run p being global [p * global/parts + offset, + local/parts).
struct ShardInfo {
  std::vector<int64_t> global_shape;
  int dim = -1;        // the sharded dimension, or -1 if whole
  int64_t offset = 0;  // first global index along `dim` (within each part)
  int64_t parts = 1;

  // First global index along `dim` of the local run `part`.
  int64_t global_start(int64_t part) const { return part * (global_shape[dim] / parts) + offset; }
};

class Builder {
 public:
  virtual ~Builder() = default;
  // The tensor to register for parameter `path` (e.g. "model.layers.0.self_attn.q_proj.weight").
  virtual at::Tensor param(const std::string& path, const std::vector<int64_t>& global_shape) = 0;
  virtual ModuleParallel parallel(const std::string& module_path) { return {}; }
  // Shard placement of every parameter handed out (whole parameters have dim -1).
  const std::map<std::string, ShardInfo>& shards() const { return shards_; }

 protected:
  std::map<std::string, ShardInfo> shards_;
};

// Every parameter whole and uninitialised (to be loaded or initialised), in `options`. On the meta device it
// builds a shape-only model at no memory cost.
class PlainBuilder : public Builder {
 public:
  explicit PlainBuilder(at::TensorOptions options);
  at::Tensor param(const std::string& path, const std::vector<int64_t>& global_shape) override;

 private:
  at::TensorOptions options_;
};

}  // namespace fme
