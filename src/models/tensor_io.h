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

// "fp32"/"float32", "bf16"/"bfloat16", "fp16"/"float16" -> the ATen type; ConfigError naming `what` (the option
// or field) otherwise. allow_fp16 = false where only fp32/bf16 compute is supported.
at::ScalarType parse_scalar_type(const std::string& name, const std::string& what, bool allow_fp16 = true);

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
