// Progress reporting for long jobs (fme extract, tokenising a dataset): a redrawn one-line status on a
// terminal, plain periodic log lines when stderr is a file or pipe (CI, nohup, job schedulers), or nothing.
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

namespace fme {

// Counters of a job so far. total_samples is -1 when unknown (streamed input): then no bar and no ETA.
struct ProgressStats {
  int64_t samples = 0;
  int64_t total_samples = -1;
  int64_t tokens = 0;
  int64_t shards = 0;
  int64_t bytes = 0;
  std::string unit = "samples";  // what `samples` counts ("steps" for training)
  std::string detail;            // when set, shown in place of shards and bytes (training: "loss 5.713")
  int64_t uploaded_shards = -1;  // >= 0 when the shards also go to object storage: those uploaded,
  int64_t staged_bytes = 0;      // and the committed bytes still waiting for their upload
  // Set by Progress from the updates of the last minute (callers leave them): the recent token rate, and the
  // ETA of the tokens left (estimated from the samples left at the tokens per sample so far). < 0: unknown,
  // then the averages since the start are shown.
  double recent_tokens_per_s = -1;
  double eta_s = -1;
};

// Where and how progress is written. Injectable so tests can capture output and drive time by hand.
struct ProgressSink {
  using Clock = std::chrono::steady_clock;
  int fd = STDERR_FILENO;
  bool is_tty = false;
  int width = 0;                           // columns; 0 = ask the terminal (TIOCGWINSZ), else 100
  std::function<Clock::time_point()> now;  // empty = steady_clock::now
  std::chrono::milliseconds redraw_interval{200};  // terminal: at most ~5 redraws a second
  std::chrono::milliseconds log_interval{10000};   // not a terminal: one line every ~10 s

  // stderr, with is_tty from isatty(STDERR_FILENO), and log_interval from FME_PROGRESS_INTERVAL (seconds) when
  // set; ConfigError when that is not a positive number.
  static ProgressSink standard_error();
};

// Thread-safe: update() may be called from a worker thread while another thread calls finish().
// Calls after finish() are ignored, so a late worker cannot scribble after the final line.
class Progress {
 public:
  Progress(std::string label, bool quiet);
  Progress(std::string label, bool quiet, ProgressSink sink);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Records the stats and writes if the redraw / log interval has passed.
  void update(const ProgressStats& stats);
  // Writes the final state once: the last redraw plus a newline on a terminal, a "done" line otherwise.
  void finish(const ProgressStats& stats);

 private:
  using Clock = ProgressSink::Clock;
  Clock::time_point now() const;
  int terminal_width() const;
  void draw_locked(const ProgressStats& stats, bool final);
  void write_all(const std::string& s);

  std::string label_;
  bool quiet_;
  ProgressSink sink_;
  std::mutex mu_;
  Clock::time_point start_;
  Clock::time_point last_write_;
  bool wrote_ = false;      // something has been written (a terminal line may need closing)
  bool finished_ = false;
  size_t last_len_ = 0;     // length of the last terminal line, to blank leftovers of a longer one
  std::deque<std::pair<Clock::time_point, int64_t>> recent_;  // (time, tokens) of the last minute's updates
  void estimate_locked(ProgressStats& stats);
};

// Helpers, public because other tools print sizes and durations the same way.
std::string format_bytes(int64_t bytes);     // "512 B", "1.5 KiB", "12.3 MiB", "1.20 GiB"
std::string format_duration(double seconds);  // "42s", "3m05s", "1h02m"
std::string format_rate(double per_second);   // "950", "12.3k", "1.25M"

// One status line (no "\r" or newline). `terminal` selects the compact, bar-bearing terminal form (fitted
// to `width` columns) rather than the log form. Exposed for tests.
std::string format_progress_line(const std::string& label, const ProgressStats& stats, double elapsed_s,
                                 bool terminal, bool final, int width);

}  // namespace fme
