// BERT encoder, mirroring Hugging Face transformers' src/transformers/models/bert/modeling_bert.py (BertModel).
#pragma once
#include <memory>

#include "models/build.h"
#include "models/model.h"

namespace fme {

std::unique_ptr<Model> make_bert(const BertConfig& config, Builder& builder);

}  // namespace fme
