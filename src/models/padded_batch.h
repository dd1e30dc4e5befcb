// One right-padded batch from token id lists: input_ids [B,T] with zeros past each row's end and
// attention_mask [B,T] = 1 on real tokens, T the longest row. Shared by extract and forward.
#pragma once
#include <cstdint>
#include <vector>

#include "models/model.h"

namespace fme {

Batch right_padded_batch(const std::vector<const std::vector<int32_t>*>& rows);

}  // namespace fme
