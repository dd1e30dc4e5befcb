#include "pipelines/extract/extract.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "data/arc_task.h"
#include "models/compute_dtype.h"
#include "models/loader.h"
#include "models/padded_batch.h"
#include "models/tensor_io.h"
#include "pipelines/extract/batcher.h"
#include "pipelines/extract/row_filter.h"
#include "pipelines/extract/run_dir.h"
#include "pipelines/extract/run_upload.h"
#include "pipelines/extract/unit_claims.h"
#include "pipelines/extract/unit_run.h"
#include "pipelines/extract/sample_source.h"
#include "util/bounded_queue.h"
#include "util/error.h"
#include "util/failpoint.h"
#include "util/file.h"
#include "util/progress.h"
#include "util/sha256.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// sha256 over config.json and every weight file's header: identifies the model without reading weights.
std::string model_hash(const std::string& dir) {
  Sha256 h;
  h.update(read_file((fs::path(dir) / "config.json").string()));
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    auto m = MappedFile::open(f);
    uint64_t n = 0;
    if (m->size() >= 8) std::memcpy(&n, m->data(), 8);
    h.update(fs::path(f).filename().string());
    h.update(m->data(), static_cast<size_t>(std::min<uint64_t>(m->size(), 8 + std::min<uint64_t>(n, m->size()))));
  }
  return h.hex_digest();
}

// A cheap identity for the dataset: names and sizes, and the first and last MiB of each file.
std::string dataset_fingerprint(const std::string& path) {
  Sha256 h;
  std::vector<fs::path> files;
  if (fs::is_directory(path)) {
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  for (const auto& f : files) {
    const uint64_t size = fs::file_size(f);
    h.update(f.filename().string() + ":" + std::to_string(size) + ";");
    auto m = MappedFile::open(f.string());
    const size_t edge = 1 << 20;
    if (size <= 2 * edge) {
      h.update(m->data(), m->size());
    } else {
      h.update(m->data(), edge);
      h.update(m->data() + size - edge, edge);
    }
  }
  return h.hex_digest();
}

// The manifest's record of how the compute dtype was chosen.
Json compute_info(const DtypeChoice& c) {
  const CpuFeatures& cpu = cpu_features();
  Json j{{"requested", c.requested}, {"dtype", dtype_short_name(c.dtype)}, {"reason", c.reason},
         {"cpu", cpu.model}, {"isa", cpu.isa_names()}};
  if (c.probe.fp32_gflops > 0) j["probe_gflops"] = {{"fp32", c.probe.fp32_gflops}, {"bf16", c.probe.bf16_gflops}};
  if (!c.warning.empty()) j["warning"] = c.warning;
  return j;
}

// The ids readers need to leave rows out later (the Python package's exclude=('bos', 'special')), whatever
// this run's own --exclude flags: the model's BOS id and the tokenizer's special ids (null when unknown).
Json token_info(const std::string& model_dir, const Tokenizer* tokenizer) {
  const int32_t bos = declared_bos_id(model_dir, tokenizer);
  Json j{{"bos_token_id", bos >= 0 ? Json(bos) : Json(nullptr)}, {"special_token_ids", nullptr}};
  if (tokenizer) j["special_token_ids"] = tokenizer->special_ids();
  return j;
}

// Number of samples the dataset yields (for the progress bar's ETA): ARC test inputs x variants, or lines.
int64_t count_samples(const std::string& kind, const ExtractOptions& o) {
  int64_t n = 0;
  if (kind.rfind("arc-", 0) == 0) {
    arc::TaskReader r(o.dataset);
    arc::Task t;
    while (r.next(t)) n += static_cast<int64_t>(t.test.size()) * std::max(1, o.augment);
  } else {
    auto m = MappedFile::open(o.dataset);
    const char* p = reinterpret_cast<const char*>(m->data());
    bool blank = true;
    for (size_t i = 0; i < m->size(); ++i) {
      if (p[i] == '\n') {
        n += !blank;
        blank = true;
      } else if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') {
        blank = false;
      }
    }
    n += !blank;
  }
  return o.max_samples >= 0 ? std::min(n, o.max_samples) : n;
}

// Keeps the rows of `r` the filter stores: ids, their positions and every point's rows.
void keep_rows(SampleResult& r, const RowFilter& filter) {
  const int64_t n = static_cast<int64_t>(r.ids.size());
  if (filter.keeps_all()) {
    r.positions.resize(n);
    for (int64_t t = 0; t < n; ++t) r.positions[t] = static_cast<int32_t>(t);
    return;
  }
  const std::vector<int64_t> kept = filter.kept(r.ids);
  std::vector<int32_t> ids;
  r.positions.clear();
  for (int64_t t : kept) {
    ids.push_back(r.ids[t]);
    r.positions.push_back(static_cast<int32_t>(t));
  }
  r.rec.excluded = n - static_cast<int64_t>(kept.size());
  r.ids = std::move(ids);
  if (r.rec.excluded == 0) return;
  const at::Tensor index = at::tensor(kept, at::kLong);
  for (auto& t : r.points) t = t.index_select(0, index);  // [kept, row...]
}

// A work unit this process was computing has been taken over by another rank (this one stalled past the lease).
struct UnitTakenOver : Error {
  using Error::Error;
};

// What the reader hands the forward stage: samples to run as one padded batch, and skipped samples
// that only need recording.
struct Work {
  std::vector<Sample> batch;
  std::vector<Sample> passthrough;
};

}  // namespace

std::string ExtractSummary::to_json() const {
  Json j{{"samples", samples},   {"stored_samples", stored_samples}, {"tokens", tokens},
         {"seconds", seconds},   {"tokens_per_s", seconds > 0 ? tokens / seconds : 0.0},
         {"pipeline_seconds", pipeline_seconds}, {"forward_seconds", forward_seconds},
         {"shards", shards},     {"bytes", bytes},                   {"truncated", truncated},
         {"skipped", skipped},   {"excluded_tokens", excluded_tokens}, {"dtype", dtype},
         {"weights_dtype", weights_dtype},
         {"out_dtype", out_dtype}};
  if (!upload_url.empty())
    j["upload"] = Json{{"url", upload_url}, {"shards", uploaded_shards}, {"bytes", uploaded_bytes}, {"wait_seconds", upload_wait_seconds}};
  return j.dump();
}

ExtractSummary run_extract(const ExtractOptions& o, std::shared_ptr<dist::Dist> dist) {
  const double t_start = now();
  check_extract_options(o);
  const int rank = dist ? dist->rank() : 0, world = dist ? dist->world() : 1;
  if (world > 1 && o.unit_samples <= 0)
    throw ConfigError("fme extract across " + std::to_string(world) + " processes: give --unit-samples N (the ranks claim units of N samples)");
  // Dtypes: explicit options win; on --resume, defaults follow what the run recorded (so `auto` on another
  // machine does not mix dtypes in one dataset); otherwise auto resolves on this hardware, output is bf16.
  ExtractOptions r = o;  // with every dtype resolved to a concrete name
  const std::string out_dir = local_run_dir(o);
  // Object storage: credentials, endpoint and bucket checked before the model loads (one request).
  std::unique_ptr<RunUpload> upload;
  if (!upload_url(o).empty()) {
    UploadOptions u;
    u.url = upload_url(o);
    u.endpoint = o.s3_endpoint;
    u.part_size = o.part_size;
    u.parallel = o.upload_parallel;
    u.max_staged = o.max_staged;
    u.delete_local = o.delete_local;
    if (world > 1) u.journal = ".s3-uploads.rank-" + std::to_string(rank) + ".json";  // one run directory, many processes
    upload = std::make_unique<RunUpload>(u, out_dir);
  }
  const Json recorded = o.resume ? recorded_run_settings(out_dir) : Json::object();
  DtypeChoice choice;
  if (o.dtype == "auto" && recorded.contains("dtype") && recorded["dtype"].is_string()) {
    choice = choose_compute_dtype(recorded["dtype"].get<std::string>(), cpu_features(), c10::kCPU, {}, "--dtype");
    choice.requested = "auto";
    choice.reason = "auto on --resume: the dtype the run was started with";
  } else {
    choice = choose_compute_dtype(o.dtype, cpu_features(), c10::kCPU, {}, "--dtype");
  }
  r.dtype = dtype_short_name(choice.dtype);
  if (r.weights_dtype.empty() && recorded.contains("weights_dtype")) r.weights_dtype = recorded["weights_dtype"];
  if (r.weights_dtype.empty()) r.weights_dtype = r.dtype;
  if (r.out_dtype.empty() && recorded.contains("out_dtype")) r.out_dtype = recorded["out_dtype"];
  if (r.out_dtype.empty()) r.out_dtype = "bf16";
  const at::ScalarType compute = choice.dtype;
  const at::ScalarType weights = parse_scalar_type(r.weights_dtype, "--weights-dtype", /*allow_fp16=*/false);
  const at::ScalarType store = parse_scalar_type(r.out_dtype, "--out-dtype");
  r.weights_dtype = dtype_short_name(weights);
  r.out_dtype = dtype_short_name(store);
  if (!choice.warning.empty()) std::fprintf(stderr, "fme extract: warning: %s\n", choice.warning.c_str());
  if (!o.quiet)
    std::fprintf(stderr, "fme extract: compute %s (%s), weights %s, output %s\n", r.dtype.c_str(), choice.reason.c_str(),
                 r.weights_dtype.c_str(), r.out_dtype.c_str());

  auto model = load_model(o.model_dir, compute, weights);
  const std::vector<HookPoint> available = model->hook_points();  // listed once, not per batch
  const std::vector<HookPoint> points = extract_hook_points(o, available, model->num_layers());
  std::unique_ptr<Tokenizer> tokenizer;
  if (fs::exists(fs::path(o.model_dir) / "tokenizer.json"))
    tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_file(o.model_dir));
  SampleSource source(o, tokenizer.get(), model->vocab_size(), model->max_positions());
  const RowFilter row_filter(o.exclude_special_tokens, o.exclude_bos, tokenizer.get(), o.model_dir);

  Json model_id{{"model_type", model->model_type()}, {"hidden_size", model->hidden_size()},
                {"num_layers", model->num_layers()}, {"hash", model_hash(o.model_dir)}};
  Json dataset_id{{"kind", source.kind()}, {"fingerprint", dataset_fingerprint(o.dataset)}};
  Json settings = output_settings(r, points);
  if (!o.prompt_template.empty()) settings["prompt_template"] = sha256_hex(read_file(o.prompt_template));
  // The template's own wrapper is what runs before --chat used, so it adds no key: they resume unchanged.
  if (!source.chat_format().empty() && source.chat_format() != "template") settings["chat"] = source.chat_format();
  Json identity{{"model", model_id}, {"dataset", dataset_id}, {"settings", settings}};
  Json model_info = model_id;
  model_info["path"] = fs::absolute(o.model_dir).string();
  Json dataset_info = dataset_id;
  dataset_info["path"] = fs::absolute(o.dataset).string();
  Json info{{"model", model_info},
            {"dataset", dataset_info},
            {"dtype", r.dtype},
            {"weights_dtype", r.weights_dtype},
            {"out_dtype", r.out_dtype},
            {"compute", compute_info(choice)},
            {"prompt", {{"template", o.prompt_template.empty() ? "builtin:output-from-examples-v0" : o.prompt_template},
                        {"chat", source.chat_format()},
                        {"augment", o.augment},
                        {"seed", o.seed}}},
            {"settings", settings},
            {"tokens", token_info(o.model_dir, tokenizer.get())}};
  const int64_t total = count_samples(source.kind(), o);
  RunDirHooks hooks;
  if (upload) {
    // Rank 0 aborts what any process of the last launch left open, before the others start (the barrier below).
    upload->start(identity, o.resume, o.resume && fs::exists(fs::path(out_dir) / "manifest.json"), o.unit_samples > 0, rank == 0);
    hooks.committed = [&](const Json& m, const std::string& text) { upload->committed(m, text); };
    hooks.stored_elsewhere = [&](const Json& shard) { return upload->stored(shard); };
  }
  std::optional<RunDir> whole;   // the run in one directory
  std::optional<UnitRun> units;  // or cut into work units (--unit-samples), each a RunDir of its own
  if (o.unit_samples > 0) {
    if (dist) {  // every rank must run the same command: compared before any of them touches the run
      const std::string mine = sha256_hex(identity.dump());
      dist->store_set("fme/extract/identity/" + std::to_string(rank), mine);
      dist->barrier();
      for (int r = 0; r < world; ++r)
        if (dist->store_get("fme/extract/identity/" + std::to_string(r)).value_or("") != mine)
          throw ConfigError("fme extract: rank " + std::to_string(r) + " was started with other settings than rank " + std::to_string(rank) +
                            " (model, dataset or options); every rank must run the same command");
    }
    UnitRunHooks unit_hooks;
    if (upload && rank == 0) {  // the run's manifest lists a unit once its remote manifest is its local one
      unit_hooks.published = [&](const std::string& unit, const std::string& text) { return upload->published(unit, text); };
      unit_hooks.committed = [&](const Json& m, const std::string& text) { upload->committed(m, text, "", /*with_shards=*/false); };
    }
    units.emplace(out_dir, identity, o.unit_samples, total, o.resume, /*writer=*/rank == 0, unit_hooks);
  }
  else whole.emplace(out_dir, identity, info, points, store, o.shard_size, o.compress == "zstd", o.resume, hooks);

  ExtractSummary sum;
  sum.dtype = r.dtype;
  sum.weights_dtype = r.weights_dtype;
  sum.out_dtype = r.out_dtype;
  RunTotals base;                                 // units: what the units not computing now hold
  RunDir* current = whole ? &*whole : nullptr;    // the directory being written
  auto fill = [&] {
    RunTotals t = base;
    if (current) t += current->totals();
    sum.samples = t.samples;
    sum.stored_samples = t.stored_samples;
    sum.tokens = t.tokens;
    sum.shards = t.shards;
    sum.bytes = t.bytes;
    sum.truncated = t.truncated;
    sum.skipped = t.skipped;
    sum.excluded_tokens = t.excluded_tokens;
  };
  auto fill_upload = [&] {
    if (!upload) return;
    const RunUpload::Stats u = upload->stats();
    sum.upload_url = upload->url();
    sum.uploaded_shards = u.shards;
    sum.uploaded_bytes = u.bytes;
    sum.upload_wait_seconds = u.wait_seconds;
  };
  if (units) base = units->computed();
  if (whole && whole->complete()) {  // --resume of a finished run: nothing left to do (but what the upload lacks)
    if (upload) upload->finish();
    fill_upload();
    fill();
    sum.seconds = now() - t_start;
    return sum;
  }

  Progress progress("extract", o.quiet || rank != 0);  // rank 0 reports the run
  // Progress counts the forward pass's work (samples and tokens computed, read by every thread) and what is
  // committed (shards, bytes); samples and tokens committed before a --resume count as done.
  fill();
  std::atomic<int64_t> done_samples{sum.samples}, done_tokens{sum.tokens};
  std::atomic<int64_t> committed_shards{sum.shards}, committed_bytes{sum.bytes};
  // Across ranks (a unit run under many processes), rank 0 reports the run: the units' state at launch plus
  // every rank's work since (samples and tokens computed by its forward pass, shards and bytes it committed).
  // The other ranks publish theirs in the store a few times a second. A unit taken over from a rank that died
  // counts the work it redoes twice (bounded by one unit; the totals at the end are read from the manifests).
  const bool across_ranks = units && dist && world > 1;
  const RunTotals at_launch = base;
  std::atomic<int64_t> mine_shards{0}, mine_bytes{0};  // committed by this process since launch
  std::mutex ranks_mu;
  auto ranks_read = std::chrono::steady_clock::time_point{};
  std::array<int64_t, 4> others{};  // the other ranks' work since launch: samples, tokens, shards, bytes
  auto publish_progress = [&] {
    if (!across_ranks || rank == 0) return;
    std::lock_guard<std::mutex> lock(ranks_mu);
    const auto t = std::chrono::steady_clock::now();
    if (t - ranks_read < std::chrono::milliseconds(200)) return;
    ranks_read = t;
    const Json mine{done_samples.load() - at_launch.samples, done_tokens.load() - at_launch.tokens, mine_shards.load(), mine_bytes.load()};
    dist->store_set("fme/extract/work/" + std::to_string(rank), mine.dump());
  };
  auto progress_stats = [&] {
    ProgressStats p;
    p.samples = done_samples.load();
    p.total_samples = total;
    p.tokens = done_tokens.load();
    p.shards = committed_shards.load();
    p.bytes = committed_bytes.load();
    if (across_ranks && rank == 0) {
      std::lock_guard<std::mutex> lock(ranks_mu);
      const auto t = std::chrono::steady_clock::now();
      if (t - ranks_read >= std::chrono::milliseconds(200)) {
        ranks_read = t;
        others = {};
        for (int r = 1; r < world; ++r) {
          const auto work = dist->store_get("fme/extract/work/" + std::to_string(r));
          if (!work) continue;
          const auto w = parse_json(*work, "the store's progress of rank " + std::to_string(r)).get<std::vector<int64_t>>();
          for (size_t i = 0; i < others.size() && i < w.size(); ++i) others[i] += w[i];
        }
      }
      p.samples = std::min(total, p.samples + others[0]);
      p.tokens += others[1];
      p.shards = at_launch.shards + mine_shards.load() + others[2];
      p.bytes = at_launch.bytes + mine_bytes.load() + others[3];
    }
    if (upload) {
      const RunUpload::Stats u = upload->stats();
      p.uploaded_shards = u.shards;
      p.staged_bytes = u.staged_bytes;
    }
    return p;
  };
  std::map<std::string, size_t> capture_slot;  // hook name -> its place in SampleResult::points
  std::vector<std::string> hook_names;
  for (size_t i = 0; i < points.size(); ++i) {
    capture_slot[points[i].name] = i;
    hook_names.push_back(points[i].name);
  }

  const double t_pipeline = now();
  // Computes the samples of `run` from its next one up to `end` (exclusive), reading `src` from the start of the
  // bucket window that sample falls in (windows start at `first`, the run's first sample, so a resumed run
  // forms exactly the batches it would have), then finishes the run.
  auto compute_range = [&](RunDir& run, SampleSource& src, int64_t first, int64_t end) {
    const int64_t resume_from = run.next_sample();
    const int64_t window_start = first + (resume_from - first) / o.bucket_window * o.bucket_window;
    BoundedQueue<Work> to_compute(4);
    BoundedQueue<std::vector<SampleResult>> to_write(8);
    auto fail_all = [&](std::exception_ptr e) {
      to_compute.fail(e);
      to_write.fail(e);
    };

    // Stage 1: read, tokenize, and cut each window of samples into length-sorted batches.
    std::thread reader([&] {
      try {
        std::vector<Sample> window;
        auto flush = [&] {
          Work skipped;
          std::vector<Sample> run_samples;
          for (auto& s : window) (s.rec.skipped.empty() ? run_samples : skipped.passthrough).push_back(std::move(s));
          window.clear();
          if (!skipped.passthrough.empty() && !to_compute.push(std::move(skipped))) return false;
          std::vector<int64_t> lengths;
          for (const auto& s : run_samples) lengths.push_back(static_cast<int64_t>(s.ids.size()));
          for (const auto& b : plan_batches(lengths, o.batch_tokens, o.batch_size)) {
            Work w;
            for (size_t i : b) w.batch.push_back(std::move(run_samples[i]));
            if (!to_compute.push(std::move(w))) return false;
          }
          return true;
        };
        Sample s;
        while (src.next(s, window_start)) {
          if (s.rec.index < window_start) continue;
          if (s.rec.index >= end) break;
          window.push_back(std::move(s));
          if (static_cast<int64_t>(window.size()) == o.bucket_window && !flush()) return;
        }
        if (flush()) to_compute.close();
      } catch (...) {
        fail_all(std::current_exception());
      }
    });

    // Stage 2: the forward pass, keeping each sample's real-token rows of the requested hook points.
    std::thread computer([&] {
      try {
        while (auto w = to_compute.pop()) {
          std::vector<SampleResult> out;
          for (auto& s : w->passthrough) out.push_back({std::move(s.rec), {}, {}, {}});
          int64_t computed_tokens = 0;
          for (const auto& s : w->batch) computed_tokens += static_cast<int64_t>(s.ids.size());
          if (!w->batch.empty()) {
            const int64_t B = static_cast<int64_t>(w->batch.size());
            std::vector<const std::vector<int32_t>*> rows;
            for (const auto& s : w->batch) rows.push_back(&s.ids);
            const Batch batch = right_padded_batch(rows);
            std::vector<SampleResult> res(B);
            for (auto& r : res) r.points.resize(points.size());
            const Capture capture(available, hook_names, [&](const std::string& name, const at::Tensor& x) {
              const size_t slot = capture_slot.at(name);  // x [B,T,row...]
              // Only a view: the writer copies the real rows out, off the forward's thread. Safe because the
              // model never writes into a tensor it has reported.
              for (int64_t b = 0; b < B; ++b) res[b].points[slot] = x[b].narrow(0, 0, static_cast<int64_t>(w->batch[b].ids.size()));
            });
            const double t0 = now();
            model->forward(batch, capture);
            sum.forward_seconds += now() - t0;
            for (int64_t b = 0; b < B; ++b) {
              res[b].rec = std::move(w->batch[b].rec);
              res[b].ids = std::move(w->batch[b].ids);
              out.push_back(std::move(res[b]));
            }
          }
          for (const auto& r : out)  // samples before the resume point pass through again, already counted
            if (r.rec.index >= resume_from) done_samples.fetch_add(1);
          done_tokens.fetch_add(computed_tokens);
          if (!to_write.push(std::move(out))) return;
        }
        if (!to_write.error()) to_write.close();
      } catch (...) {
        fail_all(std::current_exception());
      }
    });

    // Progress at a steady pace even while one long batch computes (a log line every interval when stderr is
    // not a terminal): the counters are atomics, and Progress serialises its writes.
    std::mutex tick_mu;
    std::condition_variable tick_cv;
    bool tick_stop = false;
    std::thread ticker([&] {
      std::unique_lock<std::mutex> lock(tick_mu);
      while (!tick_cv.wait_for(lock, std::chrono::seconds(1), [&] { return tick_stop; })) {
        publish_progress();
        progress.update(progress_stats());
      }
    });

    // Stage 3 (this thread): put results back in sample order and write shards.
    const RunTotals run_at_open = run.totals();
    const int64_t shards_before = mine_shards.load(), bytes_before = mine_bytes.load();
    std::exception_ptr error;
    try {
      std::map<int64_t, SampleResult> pending;
      int64_t next = resume_from;
      while (auto rs = to_write.pop()) {
        for (auto& r : *rs) {
          if (r.rec.index < resume_from) continue;  // committed before the crash
          if (r.rec.skipped.empty()) keep_rows(r, row_filter);
          // [n, row...]: own contiguous memory in the storage dtype, no padding.
          for (auto& t : r.points) t = t.to(store, false, /*copy=*/true, at::MemoryFormat::Contiguous);
          pending.emplace(r.rec.index, std::move(r));
        }
        for (auto it = pending.find(next); it != pending.end(); it = pending.find(++next)) {
          run.add(std::move(it->second));
          pending.erase(it);
        }
        fill();
        committed_shards.store(sum.shards);
        committed_bytes.store(sum.bytes);
        mine_shards.store(shards_before + run.totals().shards - run_at_open.shards);
        mine_bytes.store(bytes_before + run.totals().bytes - run_at_open.bytes);
        publish_progress();
        progress.update(progress_stats());
        if (o.on_progress) o.on_progress(progress_stats());
      }
      if (auto e = to_write.error()) std::rethrow_exception(e);
      if (!pending.empty()) throw Error("extract: internal error: samples left unordered after the input ended");
      run.finish();
    } catch (...) {
      error = std::current_exception();
      fail_all(error);
    }
    reader.join();
    computer.join();
    {
      std::lock_guard<std::mutex> lock(tick_mu);
      tick_stop = true;
    }
    tick_cv.notify_all();
    ticker.join();
    if (error) std::rethrow_exception(error);
  };

  if (whole) {
    compute_range(*whole, source, 0, std::numeric_limits<int64_t>::max());
    if (upload) upload->finish();  // the manifest last, once every shard is verified
  } else {
    // The units left, the same list on every rank: rank 0's, read before any rank starts on one.
    std::vector<int64_t> todo;
    if (rank == 0) {
      units->commit();  // a resume: the run's manifest over what is complete (and published) already
      for (int64_t u = 0; u < units->count(); ++u)
        if (!units->complete(u)) todo.push_back(u);
    }
    if (dist) {
      if (rank == 0) dist->store_set("fme/extract/todo", Json(todo).dump());
      dist->barrier();
      if (rank != 0) todo = parse_json(dist->store_get("fme/extract/todo").value_or("[]"), "the store's fme/extract/todo").get<std::vector<int64_t>>();
    }
    UnitClaims claims(dist, todo, "fme/extract/" + sha256_hex(identity.dump()).substr(0, 16), o.unit_lease_s);
    // A unit is done once it is complete on disk and, when the run is uploaded, in the bucket; its upload goes
    // on while the next unit computes.
    std::vector<int64_t> uploading;
    auto release_uploaded = [&] {
      for (auto it = uploading.begin(); it != uploading.end();) {
        if (upload && !upload->uploaded(units->unit_name(*it))) {
          ++it;
          continue;
        }
        claims.done(*it);
        it = uploading.erase(it);
      }
    };
    // While the other ranks finish their units, rank 0's progress follows their commits.
    auto waiting = [&] {
      release_uploaded();
      publish_progress();
      if (rank != 0) return;
      units->commit();
      progress.update(progress_stats());
    };
    for (int64_t u; (u = claims.next(waiting)) >= 0;) {
      Json unit_info = info;
      unit_info["unit"] = Json{{"index", u}, {"first_sample", units->first(u)}, {"end_sample", units->end(u)}, {"rank", rank}};
      RunDirHooks unit_hooks;
      const std::string name = units->unit_name(u);
      if (upload) {
        unit_hooks.committed = [&, name](const Json& m, const std::string& text) { upload->committed(m, text, name); };
        unit_hooks.stored_elsewhere = [&, name](const Json& shard) { return upload->stored(shard, name); };
      }
      unit_hooks.before_commit = [&, u] {
        if (!claims.owns(u))
          throw UnitTakenOver("fme extract: rank " + std::to_string(rank) + ": unit " + std::to_string(u) +
                              " was taken over by another rank while this one stalled for longer than --unit-lease-s; leaving it to that rank");
      };
      const bool started = units->started(u);
      RunDir run(units->unit_dir(u), identity, unit_info, points, store, o.shard_size, o.compress == "zstd", started, unit_hooks,
                 units->first(u));
      if (upload && started) {  // what it committed before (in a process that died) goes up first
        const std::string path = units->unit_dir(u) + "/manifest.json";
        const std::string text = read_file(path);
        upload->committed(parse_json(text, path), text, name);
      }
      base = units->computed_except(u);
      current = &run;
      SampleSource src(o, tokenizer.get(), model->vocab_size(), model->max_positions());
      try {
        compute_range(run, src, units->first(u), units->end(u));
      } catch (const UnitTakenOver& e) {
        std::fprintf(stderr, "%s\n", e.what());
        current = nullptr;
        claims.lost(u);
        continue;
      }
      current = nullptr;
      uploading.push_back(u);
      release_uploaded();
      base = units->computed();
      units->commit();  // rank 0 only: the run's manifest over the complete prefix
      failpoint("extract.unit.committed");
    }
    if (upload) upload->finish();  // one process: its last units' uploads (many: done before next() said so)
    release_uploaded();
    units->commit();
    if (upload) upload->finish();  // the run's manifest, last
    base = units->computed();
    if (dist) {
      // Rank 0 serves the store: it stays until the others have seen that every unit is done (or a few
      // seconds, for a rank that died meanwhile), so none of them finds the store gone.
      dist->store_add("fme/extract/left", 1);
      for (int i = 0; rank == 0 && i < 100 && dist->store_add("fme/extract/left", 0) < world; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  sum.pipeline_seconds = now() - t_pipeline;
  fill();
  committed_shards.store(sum.shards);
  committed_bytes.store(sum.bytes);
  if (rank == 0 && units) {  // the run's final state, as its units' manifests record it
    done_samples.store(sum.samples);
    done_tokens.store(sum.tokens);
    mine_shards.store(sum.shards - at_launch.shards);
    mine_bytes.store(sum.bytes - at_launch.bytes);
    others = {};
    ranks_read = std::chrono::steady_clock::now();
  }
  fill_upload();
  sum.seconds = now() - t_start;
  progress.finish(progress_stats());
  if (o.on_progress) o.on_progress(progress_stats());
  return sum;
}

}  // namespace fme
