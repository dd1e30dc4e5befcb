// Bridge between the formats layer (safetensors, torch-free) and ATen tensors: zero-copy views of mapped
// tensors, and writing named tensors to a safetensors file.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "formats/checkpoint.h"
#include "formats/safetensors.h"

namespace fme {

at::ScalarType to_scalar_type(DType t);  // throws UnsupportedError for dtypes ATen lacks (F8 on 1.13)
DType to_dtype(at::ScalarType t);

// A CPU tensor viewing the mapped bytes of `info` (no copy); it keeps the mapping alive.
// Misaligned data (the format does not promise alignment) is copied instead.
at::Tensor tensor_view(const SafetensorsFile& file, const TensorInfo& info);

// Reads all tensors of a safetensors file as views.
std::map<std::string, at::Tensor> read_safetensors(const std::string& path);

// Writes named tensors (made contiguous, on CPU) to `path` atomically, in the given order.
uint64_t write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                           const std::map<std::string, std::string>& metadata = {});

}  // namespace fme
