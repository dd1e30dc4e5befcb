// BERT encoder, mirroring Hugging Face transformers' src/transformers/models/bert/modeling_bert.py (BertModel).
#pragma once
#include <memory>

#include "models/architecture.h"
#include "models/build.h"
#include "models/model.h"

namespace fme {

std::unique_ptr<Model> make_bert(const BertConfig& config, Builder& builder);
// Its registry row (architecture.cpp).
const Architecture& bert_architecture();

}  // namespace fme
