// A bf16 tensor's storage as raw 16-bit values, for the hand-written CPU kernels (util/bf16_bits.h converts
// them): c10::BFloat16's own conversions are out-of-line calls that keep a loop scalar.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace fme {

inline uint16_t* bf16_data(const at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr<at::BFloat16>()); }

}  // namespace fme
