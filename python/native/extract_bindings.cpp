// fme._native.extract: fme::run_extract (pipelines/extract/extract.h) with every `fme extract` option as a
// keyword (--batch-tokens -> batch_tokens). Values are checked as the CLI checks them: types here (TypeError
// naming the option), values by run_extract and apply_threads, the functions the CLI calls. The GIL is
// released for the whole run and taken back only to call `progress` and to let Ctrl-C (KeyboardInterrupt)
// stop the run, which then stays resumable.
#include <algorithm>
#include <climits>
#include <functional>
#include <map>
#include <string>

#include "native.h"
#include "pipelines/extract/extract.h"
#include "pipelines/threads.h"

namespace fme::native {
namespace {

std::string type_name(py::handle v) { return py::str(v.get_type().attr("__name__")); }

[[noreturn]] void wrong_type(const std::string& name, const char* expected, py::handle v) {
  throw py::type_error("extract(): option '" + name + "' expects " + expected + ", got " + type_name(v));
}

std::string as_str(const std::string& name, py::handle v) {
  if (!py::isinstance<py::str>(v)) wrong_type(name, "a str", v);
  return v.cast<std::string>();
}

bool as_bool(const std::string& name, py::handle v) {
  if (!py::isinstance<py::bool_>(v)) wrong_type(name, "a bool", v);
  return v.cast<bool>();
}

// An int or anything with __index__ (numpy integers), but not a bool: as a count it is a mistake.
int64_t as_int(const std::string& name, py::handle v) {
  if (py::isinstance<py::bool_>(v) || !PyIndex_Check(v.ptr())) wrong_type(name, "an int", v);
  const auto i = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
  if (!i) throw py::error_already_set();
  const long long x = PyLong_AsLongLong(i.ptr());
  if (x == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error("extract(): option '" + name + "' is out of range: " + std::string(py::str(v)));
  }
  return x;
}

// For the int-typed options: out-of-range values keep their sign, so the C++ check names a wrong one.
int as_int32(const std::string& name, py::handle v) {
  return static_cast<int>(std::clamp<int64_t>(as_int(name, v), INT_MIN, INT_MAX));
}

uint64_t as_uint(const std::string& name, py::handle v) {
  const int64_t x = as_int(name, v);
  if (x < 0) throw py::value_error("extract(): option '" + name + "' must not be negative, got " + std::to_string(x));
  return static_cast<uint64_t>(x);
}

// A str, or a sequence of items joined with commas (hooks: patterns; layers: block indices).
std::string as_list(const std::string& name, py::handle v, bool ints) {
  const char* expected = ints ? "a str, an int or a sequence of ints" : "a str or a sequence of str";
  if (py::isinstance<py::str>(v)) return v.cast<std::string>();
  if (ints && !py::isinstance<py::bool_>(v) && PyIndex_Check(v.ptr())) return std::to_string(as_int(name, v));
  if (!py::isinstance<py::sequence>(v) || py::isinstance<py::bytes>(v)) wrong_type(name, expected, v);
  std::string out;
  for (py::handle item : v) {
    if (!out.empty()) out += ',';
    out += ints ? std::to_string(as_int(name, item)) : as_str(name, item);
  }
  if (out.empty()) throw py::value_error("extract(): option '" + name + "' is an empty sequence");
  return out;
}

using O = ExtractOptions;
using N = const std::string&;  // the option's name, for messages
using V = py::handle;
using Setter = std::function<void(O&, N, V)>;

// Every option of `fme extract` but --model, --dataset and --out (the positional arguments), by name.
const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> table = {
      {"format", [](O& o, N n, V v) { o.format = as_str(n, v); }},
      {"text_field", [](O& o, N n, V v) { o.text_field = as_str(n, v); }},
      {"max_samples", [](O& o, N n, V v) { o.max_samples = as_int(n, v); }},
      {"prompt_template", [](O& o, N n, V v) { o.prompt_template = fspath(v, "extract(): option '" + n + "'"); }},
      {"chat", [](O& o, N n, V v) { o.chat = as_str(n, v); }},
      {"augment", [](O& o, N n, V v) { o.augment = as_int32(n, v); }},
      {"seed", [](O& o, N n, V v) { o.seed = as_uint(n, v); }},
      {"max_seq_len", [](O& o, N n, V v) { o.max_seq_len = as_int(n, v); }},
      {"skip_longer", [](O& o, N n, V v) { o.skip_longer = as_int(n, v); }},
      {"exclude_special_tokens", [](O& o, N n, V v) { o.exclude_special_tokens = as_bool(n, v); }},
      {"exclude_bos", [](O& o, N n, V v) { o.exclude_bos = as_bool(n, v); }},
      {"hooks", [](O& o, N n, V v) { o.hooks = as_list(n, v, false); }},
      {"layers", [](O& o, N n, V v) { o.layers = as_list(n, v, true); }},
      {"dtype", [](O& o, N n, V v) { o.dtype = as_str(n, v); }},
      {"weights_dtype", [](O& o, N n, V v) { o.weights_dtype = as_str(n, v); }},
      {"out_dtype", [](O& o, N n, V v) { o.out_dtype = as_str(n, v); }},
      {"batch_tokens", [](O& o, N n, V v) { o.batch_tokens = as_int(n, v); }},
      {"batch_size", [](O& o, N n, V v) { o.batch_size = as_int(n, v); }},
      {"bucket_window", [](O& o, N n, V v) { o.bucket_window = as_int(n, v); }},
      {"shard_size", [](O& o, N n, V v) { o.shard_size = as_uint(n, v); }},
      {"compress", [](O& o, N n, V v) { o.compress = as_str(n, v); }},
      {"resume", [](O& o, N n, V v) { o.resume = as_bool(n, v); }},
      {"unit_samples", [](O& o, N n, V v) { o.unit_samples = as_int(n, v); }},
      {"upload", [](O& o, N n, V v) { o.upload = as_str(n, v); }},
      {"staging", [](O& o, N n, V v) { o.staging = fspath(v, "extract(): option '" + n + "'"); }},
      {"s3_endpoint", [](O& o, N n, V v) { o.s3_endpoint = as_str(n, v); }},
      {"part_size", [](O& o, N n, V v) { o.part_size = as_uint(n, v); }},
      {"upload_parallel", [](O& o, N n, V v) { o.upload_parallel = as_int32(n, v); }},
      {"max_staged", [](O& o, N n, V v) { o.max_staged = as_uint(n, v); }},
      {"delete_local", [](O& o, N n, V v) { o.delete_local = as_bool(n, v); }},
      {"quiet", [](O& o, N n, V v) { o.quiet = as_bool(n, v); }},
      {"threads", [](O& o, N n, V v) { o.threads = as_int32(n, v); }},
  };
  return table;
}

std::string valid_options() {
  std::string s;
  for (const auto& [name, setter] : setters()) s += (s.empty() ? "" : ", ") + name;
  return s;
}

py::dict progress_dict(const ProgressStats& p) {
  py::dict d;
  d["samples"] = p.samples;
  d["total_samples"] = p.total_samples < 0 ? py::object(py::none()) : py::object(py::int_(p.total_samples));
  d["tokens"] = p.tokens;
  d["shards"] = p.shards;
  d["bytes"] = p.bytes;
  return d;
}

py::object extract(py::handle model, py::handle dataset, py::handle out, py::object progress, py::kwargs options) {
  ExtractOptions o;
  o.model_dir = fspath(model, "extract(): model");
  o.dataset = fspath(dataset, "extract(): dataset");
  o.out = fspath(out, "extract(): out");
  o.threads = default_threads();
  for (const auto& [key, value] : options) {
    const std::string name = key.cast<std::string>();
    const auto it = setters().find(name);
    if (it == setters().end())
      throw py::type_error("extract() got an unexpected keyword argument '" + name + "' (valid: " + valid_options() +
                           ")");
    if (!value.is_none()) it->second(o, name, value);  // None: the CLI's default
  }
  if (!progress.is_none() && !PyCallable_Check(progress.ptr()))
    throw py::type_error("extract(): progress must be callable, got " + type_name(progress));

  // Captures a pointer, not the object: run_extract copies its options without the GIL, and copying a
  // py::object would touch its reference count. `progress` outlives the run (it is this frame's).
  const py::object* callback = progress.is_none() ? nullptr : &progress;
  o.on_progress = [callback](const ProgressStats& stats) {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C: KeyboardInterrupt to the caller
    if (callback) (*callback)(progress_dict(stats));  // its exception, as error_already_set, stops the run
  };
  ExtractSummary summary;
  {
    py::gil_scoped_release release;
    apply_threads(o.threads);
    summary = run_extract(o);
  }
  // The summary's one definition is its JSON (what `fme extract` prints).
  return py::module_::import("json").attr("loads")(summary.to_json());
}

}  // namespace

void bind_extract(py::module_& m) {
  py::options docs;
  docs.disable_function_signatures();  // the docstring's own first line says it better than "handle"
  m.def("extract", &extract, py::arg("model"), py::arg("dataset"), py::arg("out"), py::arg("progress") = py::none(),
        "extract(model, dataset, out, progress=None, **options) -> dict\n\n"
        "Runs `fme extract --model MODEL --dataset DATASET --out OUT` with OPTIONS named as its flags with\n"
        "underscores (hooks, layers, dtype, weights_dtype, out_dtype, format, text_field, max_samples,\n"
        "prompt_template, chat, augment, seed, max_seq_len, skip_longer, exclude_special_tokens, exclude_bos,\n"
        "batch_tokens, batch_size, bucket_window, shard_size, compress, resume, unit_samples, upload, staging,\n"
        "s3_endpoint, part_size, upload_parallel, max_staged, delete_local, threads, quiet); None leaves the\n"
        "default. hooks may be a list of patterns, layers a list of block indices. PROGRESS, if given, is called\n"
        "with {samples, total_samples (None when unknown), tokens, shards, bytes} as shards commit and at the end.\n"
        "Returns the run's summary (what the CLI prints). Raises fme._native.Error with fme's message.");
}

}  // namespace fme::native
