// Model factory and vocabulary reading shared by BPE and WordPiece (see model.h).
#include "tokenizer/model.h"

#include "tokenizer/bpe.h"
#include "tokenizer/wordpiece.h"

namespace fme::tok {

Vocab read_vocab(const Json& vocab, const std::string& path, const JsonFields& f) {
  if (!vocab.is_object()) f.fail(path, "expected an object {\"token\": id, ...}, found " + JsonFields::found(vocab));
  Vocab v;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) v.add(it.key(), f.as_id(it.value(), path + "[\"" + it.key() + "\"]"));
  return v;
}

std::unique_ptr<Model> make_model(const Json& j, const JsonFields& f) {
  const std::string path = "model";
  if (!j.is_object()) f.fail(path, "expected an object, found " + JsonFields::found(j));
  std::string type = f.string_or(j, "type", path, "");
  if (type.empty()) {
    // The older format has no "type"; HF tells the models apart by their fields, and so do we.
    if (j.contains("merges")) type = "BPE";
    else if (j.contains("max_input_chars_per_word") || j.contains("continuing_subword_prefix")) type = "WordPiece";
    else f.fail(path, "no \"type\" and no fields that identify a BPE (merges) or WordPiece model "
                      "(max_input_chars_per_word)");
  }
  if (type == "BPE") return make_bpe(j, path, f);
  if (type == "WordPiece") return make_wordpiece(j, path, f);
  f.unsupported(path + ".type", type, "BPE, WordPiece");
}

}  // namespace fme::tok
