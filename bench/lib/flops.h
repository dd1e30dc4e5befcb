// Matmul FLOPs of a forward pass, for reporting effective GFLOP/s next to the machine's GEMM peak.
#pragma once
#include <cstdint>

#include "models/model_config.h"

namespace fme {

// FLOPs of blocks 0..last_block (-1: all) on B sequences of T tokens (no padding): 2 x (block linear weights)
// per token, plus attention's QK^T and PV (2 x 2 x hd per head per visible key; causal: (T+1)/2 visible).
double forward_flops(const ModelConfig& config, int64_t B, int64_t T, int64_t last_block = -1);

}  // namespace fme
