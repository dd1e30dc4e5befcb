// A micro-batch of packed rows (packed_rows.h) as the model and the loss take it: ids, attention mask,
// segment and position ids, and the labels of the objective.
//   causal: a token's label is itself where the token before it is of the same segment (HF shifts labels
//           inside the loss), so no position learns to predict across a document boundary; -100 elsewhere;
//   mlm:    BERT's masking (HF's DataCollatorForLanguageModeling): each real token that is not a special token
//           is chosen with probability 15%; a chosen token becomes [MASK] 80% of the time, a random id 10%, and
//           stays 10%; labels are the chosen tokens' ids, -100 elsewhere. The draws hash (seed, step, document,
//           offset in the document), so they are reproducible from (seed, step) and a token is masked the same
//           way whether its document is packed with others or not.
#pragma once
#include <cstdint>
#include <unordered_set>
#include <vector>

#include "pipelines/train/fixed_batch.h"
#include "pipelines/train/loss.h"
#include "pipelines/train/packed_rows.h"

namespace fme {

struct MlmMasking {
  int32_t mask_id = -1;
  int64_t vocab_size = 0;
  std::unordered_set<int32_t> special;  // never chosen
  double probability = 0.15;
};

// `rows` (all of seq_len tokens) as one batch. `mlm` is needed for Objective::MaskedLM; `token_types`: give
// token_type_ids (zeros), as BERT takes them.
LabeledBatch make_train_batch(const std::vector<PackedRow>& rows, Objective objective, const MlmMasking* mlm, uint64_t seed,
                              int64_t step, bool token_types);

}  // namespace fme
