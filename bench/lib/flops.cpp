#include "bench/lib/flops.h"

#include "models/architecture.h"

namespace fme {

double forward_flops(const ModelConfig& config, int64_t B, int64_t T, int64_t last_block) {
  return architecture_for(config).flops(config, B, T, last_block);
}

}  // namespace fme
