// fme._native.Tokenizer: fme::Tokenizer (tokenizer/tokenizer.h), a Hugging Face tokenizer.json read natively.
// encode(text, add_special_tokens=True) gives the ids `fme tokenize` writes (and HF's encode); the GIL is
// released while C++ works, and encode_batch spreads a large batch over the cores.
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "native.h"
#include "tokenizer/tokenizer.h"
#include "worker_pool.h"

namespace fme::native {
namespace {

// Each worker gets at least this much text (~0.5 ms of encoding), so starting a thread (~50 us) costs under
// a tenth of what it saves. Measured on 16 cores (5.8 MB of web text): BERT and Llama 3 scale ~14x, Qwen2.5
// (NFC normalizer) ~3x; two 11 KB texts already encode ~1.5x faster on two threads.
constexpr size_t kMinBytesPerWorker = 8 * 1024;

// ids of every text, in order. The tokenizer is safe to share: encode is const, its word cache locks.
std::vector<std::vector<int32_t>> encode_all(const Tokenizer& tok, const std::vector<std::string>& texts,
                                             bool add_special_tokens) {
  std::vector<std::vector<int32_t>> out(texts.size());
  size_t bytes = 0;
  for (const auto& t : texts) bytes += t.size();
  const size_t workers = std::max<size_t>(1, std::min({cores(), texts.size(), bytes / kMinBytesPerWorker}));

  std::atomic<size_t> next{0};
  std::mutex mu;
  std::exception_ptr error;  // the first failing text's (lowest index), so the message does not depend on timing
  size_t error_index = texts.size();
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < texts.size();) {
      try {
        out[i] = tok.encode(texts[i], add_special_tokens);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (i < error_index) error_index = i, error = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (size_t k = 1; k < workers; ++k) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // no more threads to be had: the ones running (and this one) finish the batch
    }
  }
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  return out;
}

// Decoded text as str; bytes that are not UTF-8 (none from fme's decoders) become U+FFFD, as in HF.
py::str to_str(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

}  // namespace

void bind_tokenizer(py::module_& m) {
  py::class_<Tokenizer>(m, "Tokenizer",
                        "A Hugging Face tokenizer.json read by fme (byte-level BPE, SentencePiece-style BPE, "
                        "WordPiece): the same ids as HF's tokenizers library and `fme tokenize`.")
      .def_static(
          "from_dir",
          [](py::handle path) {
            const std::string p = fspath(path, "Tokenizer.from_dir(path)");
            py::gil_scoped_release release;
            return Tokenizer::from_file(p);
          },
          py::arg("path"), "Loads PATH/tokenizer.json, or PATH itself when it is the file.")
      .def(
          "encode",
          [](const Tokenizer& t, const std::string& text, bool add_special_tokens) {
            py::gil_scoped_release release;
            return t.encode(text, add_special_tokens);
          },
          py::arg("text"), py::arg("add_special_tokens") = true,
          "Token ids of TEXT; add_special_tokens applies the post-processor's template (BERT: [CLS] ... [SEP]).")
      .def(
          "encode_batch",
          [](const Tokenizer& t, const std::vector<std::string>& texts, bool add_special_tokens) {
            py::gil_scoped_release release;
            return encode_all(t, texts, add_special_tokens);
          },
          py::arg("texts"), py::arg("add_special_tokens") = true,
          "encode() of each text, in order; large batches are spread over the cores.")
      .def(
          "decode",
          [](const Tokenizer& t, const std::vector<int32_t>& ids, bool skip_special_tokens) {
            std::string text;
            {
              py::gil_scoped_release release;
              text = t.decode(ids, skip_special_tokens);
            }
            return to_str(text);
          },
          py::arg("ids"), py::arg("skip_special_tokens") = false,
          "Text of IDS (HF's decode); unknown ids are skipped, special tokens too when skip_special_tokens.")
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size, "Size of the id space (max id + 1).")
      .def(
          "token_to_id",
          [](const Tokenizer& t, const std::string& token) -> std::optional<int32_t> {
            const int32_t id = t.token_to_id(token);
            return id < 0 ? std::nullopt : std::optional<int32_t>(id);
          },
          py::arg("token"), "The id of TOKEN (a vocabulary or added token), or None.")
      .def(
          "id_to_token",
          [](const Tokenizer& t, int32_t id) -> std::optional<std::string> {
            std::string token = t.id_to_token(id);
            return token.empty() ? std::nullopt : std::optional<std::string>(std::move(token));
          },
          py::arg("id"), "The token of ID, or None when no token has it.")
      .def_property_readonly("special_ids", &Tokenizer::special_ids,
                             "Ids of the added tokens marked special ([CLS], <|im_start|>, ...), ascending.")
      .def("__repr__",
           [](const Tokenizer& t) {
             return "<fme._native.Tokenizer vocab_size=" + std::to_string(t.vocab_size()) + ">";
           });
}

}  // namespace fme::native
