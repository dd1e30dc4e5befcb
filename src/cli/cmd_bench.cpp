// fme bench extract [...] : benchmarks of whole jobs (micro-benchmarks live in bench/).
#include "cli/command.h"
#include "bench/lib/bench_extract.h"
#include "bench/lib/bench_prepare.h"
#include "bench/lib/bench_train.h"

namespace fme::cli {

void add_bench(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks of whole jobs, with ratios to peaks measured in the same run");
  bench->require_subcommand(1);
  auto o = std::make_shared<BenchExtractOptions>();
  CLI::App* cmd = bench->add_subcommand("extract", "The seed's extraction benchmark (default Qwen2.5-0.5B shapes, 4 x 512, layers 10-23; any decoder or gpt2 preset)");
  cmd->add_option("--preset", o->preset, "model preset");
  cmd->add_option("--batch", o->batch, "sequences per batch");
  cmd->add_option("--seq", o->seq, "tokens per sequence");
  cmd->add_option("--batches", o->batches, "number of batches");
  cmd->add_option("--layers", o->layers, "layers to store (default: the last 14 blocks)");
  cmd->add_option("--dtypes", o->dtypes, "comma list of auto, fp32, bf16 (default: auto,fp32, and bf16 where the CPU has native bf16)");
  cmd->add_option("--peer", o->peer, "PyTorch eager peer script (default: bench/peers/torch_peer.py)");
  cmd->add_option("--work-dir", o->work_dir, "scratch directory");
  add_threads_option(cmd, &o->threads);
  cmd->callback([o] {
    apply_threads(o->threads);
    run_bench_extract(*o);
  });

  auto tr = std::make_shared<BenchTrainOptions>();
  CLI::App* train = bench->add_subcommand("train", "Training step time (bert-4l-768h MLM 8 x 128, Qwen2.5-0.5B next-token 1 x 512) against PyTorch eager and the GEMM peak");
  train->add_option("--presets", tr->presets, "presets to run");
  train->add_option("--batch", tr->batch, "rows per step (default: 8 for BERT, 1 for decoders)");
  train->add_option("--seq", tr->seq, "tokens per row (default: 128 for BERT, 512 for decoders)");
  train->add_option("--steps", tr->steps, "steps per run; the first 3 (at most all but one) are warm-up");
  train->add_option("--precisions", tr->precisions, "comma list of fp32, bf16-mixed (default: fp32, and bf16-mixed where bf16 is native)");
  train->add_option("--peer", tr->peer, "PyTorch peer script (default: ../shared/tools/torch_train.py)");
  train->add_option("--work-dir", tr->work_dir, "scratch directory");
  train->add_option("--fit", tr->fit_gib, "instead: the largest seed-table BERT whose AdamW step fits in this many GiB (measured, then checked by running it)");
  add_threads_option(train, &tr->threads);
  train->callback([tr] {
    apply_threads(tr->threads);
    run_bench_train(*tr);
  });

  auto p = std::make_shared<BenchPrepareOptions>();
  CLI::App* prep = bench->add_subcommand("prepare", "The seed's make_module_opt table: BERT presets, TP plan, AdamW, tp=1 and 2");
  prep->add_option("--presets", p->presets, "BERT presets to run");
  prep->add_option("--tp", p->tp, "tensor-parallel sizes (processes on this machine)");
  prep->add_option("--memory-budget-gib", p->memory_budget_gib, "skip sizes whose parameters (and first steps whose params, grads and moments) exceed this");
  prep->add_option("--repeats", p->repeats, "rounds of (prepare, floors) per row; the best of each is reported");
  prep->callback([p] { run_bench_prepare(*p); });

  auto f = std::make_shared<BenchFloorOptions>();
  CLI::App* floor = bench->add_subcommand("floor", "Seconds to first-touch N bytes of fresh memory (the floor of prepare)");
  floor->add_option("--bytes", f->bytes, "bytes to touch")->check(CLI::PositiveNumber);
  floor->add_option("--threads", f->threads, "threads touching")->check(CLI::PositiveNumber);
  floor->add_flag("--huge-pages", f->huge_pages, "madvise the mapping for transparent huge pages");
  floor->add_flag("--fill", f->fill, "write N(0, 0.02) fp32 values as prepare does, instead of one byte a page");
  floor->add_flag("--populate", f->populate, "take the faults with MADV_POPULATE_WRITE a MiB at a time, then write a byte a page");
  floor->callback([f] { run_bench_floor(*f); });
}

}  // namespace fme::cli
