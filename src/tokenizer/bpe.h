// Byte-pair-encoding model (HF models/bpe): merges applied by rank with a priority queue, as HF does,
// over a merge table keyed by the pair of ids, with a bounded word cache shared by threads.
#pragma once
#include <memory>

#include "tokenizer/model.h"

namespace fme::tok {

std::unique_ptr<Model> make_bpe(const Json& j, const std::string& path, const JsonFields& f);

}  // namespace fme::tok
