#include "models/tensor_io.h"

#include <ATen/ATen.h>

#include "util/error.h"

namespace fme {

at::ScalarType parse_scalar_type(const std::string& name, const std::string& what, bool allow_fp16) {
  if (name == "fp32" || name == "float32") return at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  if (allow_fp16 && (name == "fp16" || name == "float16")) return at::kHalf;
  throw ConfigError(what + ": expected fp32, bf16" + (allow_fp16 ? ", fp16" : "") + "; got '" + name + "'");
}

at::ScalarType to_scalar_type(DType t) {
  switch (t) {
    case DType::BOOL: return at::kBool;
    case DType::U8: return at::kByte;
    case DType::I8: return at::kChar;
    case DType::I16: return at::kShort;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::I32: return at::kInt;
    case DType::F32: return at::kFloat;
    case DType::I64: return at::kLong;
    case DType::F64: return at::kDouble;
    default: break;
  }
  throw UnsupportedError("dtype " + std::string(dtype_name(t)) + " has no ATen equivalent in this libtorch");
}

DType to_dtype(at::ScalarType t) {
  switch (t) {
    case at::kBool: return DType::BOOL;
    case at::kByte: return DType::U8;
    case at::kChar: return DType::I8;
    case at::kShort: return DType::I16;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    case at::kInt: return DType::I32;
    case at::kFloat: return DType::F32;
    case at::kLong: return DType::I64;
    case at::kDouble: return DType::F64;
    default: break;
  }
  throw UnsupportedError(std::string("tensor type ") + c10::toString(t) + " cannot be stored in safetensors");
}

at::Tensor tensor_view(const SafetensorsFile& file, const TensorInfo& info) {
  const at::ScalarType st = to_scalar_type(info.dtype);
  const uint8_t* p = file.data(info);
  auto opts = at::TensorOptions().dtype(st).device(at::kCPU);
  if (info.numel() == 0) return at::empty(info.shape, opts);
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(info.dtype) != 0) {
    at::Tensor t = at::empty(info.shape, opts);
    std::memcpy(t.data_ptr(), p, info.nbytes());
    return t;
  }
  std::shared_ptr<MappedFile> keep = file.mapping();
  // The mapping is read-only: callers must not write into views (the loader copies into parameters).
  return at::from_blob(const_cast<uint8_t*>(p), info.shape, [keep](void*) mutable { keep.reset(); }, opts);
}

std::map<std::string, at::Tensor> read_safetensors(const std::string& path) {
  auto file = SafetensorsFile::open(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& info : file->tensors()) out.emplace(info.name, tensor_view(*file, info));
  return out;
}

uint64_t write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                           const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;  // contiguous CPU copies stay alive until written
  keep.reserve(tensors.size());
  SafetensorsWriter w;
  for (const auto& [name, t] : tensors) {
    at::Tensor c = t.to(at::kCPU).contiguous();
    keep.push_back(c);
    w.add(name, to_dtype(c.scalar_type()), c.sizes().vec(), c.data_ptr(), c.numel() * c.element_size());
  }
  for (const auto& [k, v] : metadata) w.set_metadata(k, v);
  return w.write(path);
}

}  // namespace fme
