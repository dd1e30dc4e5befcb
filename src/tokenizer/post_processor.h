// Post-processors of HF tokenizer.json: add the special tokens of the single-sequence template when
// encode() is asked to (BERT: [CLS] ... [SEP]). Supported types: TemplateProcessing, BertProcessing,
// RobertaProcessing, ByteLevel (ids unchanged), Sequence.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_fields.h"

namespace fme::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Rewrites the ids of one sequence; only called with add_special_tokens.
  virtual void process(std::vector<int32_t>& ids) const = 0;
};

std::unique_ptr<PostProcessor> make_post_processor(const Json& j, const std::string& path, const JsonFields& f);

}  // namespace fme::tok
