// Post-processors (see post_processor.h), as HF's processors/{template,bert,roberta,sequence}.rs for a
// single sequence.
#include "tokenizer/post_processor.h"

namespace fme::tok {
namespace {

// cls + ids + sep (BertProcessing and RobertaProcessing agree on a single sequence).
class WrapProcessor : public PostProcessor {
 public:
  WrapProcessor(int32_t cls, int32_t sep) : cls_(cls), sep_(sep) {}
  void process(std::vector<int32_t>& ids) const override {
    ids.insert(ids.begin(), cls_);
    ids.push_back(sep_);
  }

 private:
  int32_t cls_, sep_;
};

class TemplateProcessor : public PostProcessor {
 public:
  // The template as a list of pieces: special-token ids, or kSequence for the encoded text.
  explicit TemplateProcessor(std::vector<std::vector<int32_t>> pieces) : pieces_(std::move(pieces)) {}
  void process(std::vector<int32_t>& ids) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 8);
    for (const auto& p : pieces_) {
      if (p.empty()) out.insert(out.end(), ids.begin(), ids.end());  // the "A" sequence
      else out.insert(out.end(), p.begin(), p.end());
    }
    ids.swap(out);
  }

 private:
  std::vector<std::vector<int32_t>> pieces_;
};

class NoopProcessor : public PostProcessor {
 public:
  void process(std::vector<int32_t>&) const override {}
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (const auto& s : steps_) s->process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// ["[CLS]", 101] as BertProcessing stores its tokens.
int32_t token_pair_id(const Json& j, const char* key, const std::string& path, const JsonFields& f) {
  const Json& v = f.get(j, key, path);
  std::string p = JsonFields::join(path, key);
  if (!v.is_array() || v.size() != 2 || !v[0].is_string())
    f.fail(p, "expected [\"token\", id], found " + JsonFields::found(v));
  return f.as_id(v[1], p + "[1]");
}

std::unique_ptr<PostProcessor> make_template(const Json& j, const std::string& path, const JsonFields& f) {
  const Json& single = f.get_array(j, "single", path);
  const Json* specials = JsonFields::find(j, "special_tokens");
  std::vector<std::vector<int32_t>> pieces;
  for (size_t i = 0; i < single.size(); ++i) {
    std::string ipath = path + ".single[" + std::to_string(i) + "]";
    const Json& item = single[i];
    if (const Json* seq = JsonFields::find(item, "Sequence")) {
      std::string id = f.get_string(*seq, "id", ipath + ".Sequence");
      if (id != "A") f.fail(ipath + ".Sequence.id", "a single-sequence template can only use \"A\", found \"" + id + "\"");
      pieces.emplace_back();
    } else if (const Json* sp = JsonFields::find(item, "SpecialToken")) {
      std::string name = f.get_string(*sp, "id", ipath + ".SpecialToken");
      const Json* def = specials ? JsonFields::find(*specials, name.c_str()) : nullptr;
      if (!def) f.fail(path + ".special_tokens", "missing the special token '" + name + "' used by " + ipath);
      std::string dpath = path + ".special_tokens[\"" + name + "\"]";
      const Json& ids = f.get_array(*def, "ids", dpath);
      if (ids.empty()) f.fail(dpath + ".ids", "expected at least one id, found []");
      std::vector<int32_t> v;
      for (size_t k = 0; k < ids.size(); ++k) v.push_back(f.as_id(ids[k], dpath + ".ids[" + std::to_string(k) + "]"));
      pieces.push_back(std::move(v));
    } else {
      f.fail(ipath, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}, found " + JsonFields::found(item));
    }
  }
  return std::make_unique<TemplateProcessor>(std::move(pieces));
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const Json& j, const std::string& path, const JsonFields& f) {
  if (!j.is_object()) f.fail(path, "expected an object, found " + JsonFields::found(j));
  std::string type = f.get_string(j, "type", path);
  if (type == "TemplateProcessing") return make_template(j, path, f);
  if (type == "BertProcessing" || type == "RobertaProcessing")
    return std::make_unique<WrapProcessor>(token_pair_id(j, "cls", path, f), token_pair_id(j, "sep", path, f));
  if (type == "ByteLevel") return std::make_unique<NoopProcessor>();  // it only trims offsets
  if (type == "Sequence") {
    const Json& list = f.get_array(j, "processors", path);
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < list.size(); ++i)
      steps.push_back(make_post_processor(list[i], path + ".processors[" + std::to_string(i) + "]", f));
    return std::make_unique<SequenceProcessor>(std::move(steps));
  }
  f.unsupported(path + ".type", type, "TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence");
}

}  // namespace fme::tok
