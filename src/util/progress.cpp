// Progress reporter: formats job counters and throttles how often they reach the terminal or the log.
#include "util/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <utility>

#include "util/error.h"

namespace fme {
namespace {

std::string printf_string(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// "ETA" of the remaining samples at the average sample rate so far; empty when it cannot be estimated.
std::string eta_text(const ProgressStats& s, double elapsed_s) {
  if (s.eta_s >= 0) return format_duration(s.eta_s);
  // Under a second in, the rate is mostly start-up noise and the estimate would mislead.
  if (s.total_samples < 0 || s.samples <= 0 || elapsed_s < 1.0) return "";
  int64_t remaining = s.total_samples - s.samples;
  if (remaining < 0) remaining = 0;
  double rate = static_cast<double>(s.samples) / elapsed_s;
  return format_duration(static_cast<double>(remaining) / rate);
}

std::string tok_rate_text(const ProgressStats& s, double elapsed_s) {
  // Below ~1 ms the rate is noise (and would divide by ~0).
  if (s.recent_tokens_per_s >= 0) return format_rate(s.recent_tokens_per_s);
  if (elapsed_s < 1e-3) return "-";
  return format_rate(static_cast<double>(s.tokens) / elapsed_s);
}

std::string samples_text(const ProgressStats& s) {
  std::string out = std::to_string(s.samples);
  if (s.total_samples >= 0) out += "/" + std::to_string(s.total_samples);
  return out;
}

double fraction(const ProgressStats& s) {
  if (s.total_samples <= 0) return s.total_samples == 0 ? 1.0 : 0.0;
  double f = static_cast<double>(s.samples) / static_cast<double>(s.total_samples);
  return f < 0 ? 0 : (f > 1 ? 1 : f);
}

std::string bar(double f, int cells) {
  int full = static_cast<int>(f * cells + 1e-9);
  if (full > cells) full = cells;
  return "[" + std::string(static_cast<size_t>(full), '#') + std::string(static_cast<size_t>(cells - full), '.') + "]";
}

}  // namespace

std::string format_bytes(int64_t bytes) {
  if (bytes < 0) return "?";
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  // Two decimals from GiB up: a 1.2 GiB vs 1.24 GiB difference is ~40 MiB, worth seeing on big runs.
  return printf_string(u >= 2 ? "%.2f" : "%.1f", v) + " " + units[u];
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return std::to_string(s) + "s";
  char buf[64];
  if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>((s % 3600) / 60));
  }
  return buf;
}

std::string format_rate(double v) {
  if (!std::isfinite(v) || v < 0) return "?";
  if (v < 1000) return printf_string("%.0f", v);
  if (v < 1e6) return printf_string("%.1fk", v / 1e3);
  return printf_string("%.2fM", v / 1e6);
}

std::string format_progress_line(const std::string& label, const ProgressStats& s, double elapsed_s, bool terminal,
                                 bool final, int width) {
  std::string eta = final ? "" : eta_text(s, elapsed_s);
  std::string rate = tok_rate_text(s, elapsed_s);
  if (!terminal) {
    // Log form: stable "key value" fields separated by ", " so logs stay greppable.
    std::string line = label + ": " + (final ? "done, " : "") + samples_text(s) + " " + s.unit;
    if (s.total_samples > 0) line += printf_string(" (%.1f%%)", 100.0 * fraction(s));
    line += ", " + std::to_string(s.tokens) + " tokens (" + rate + " tok/s)";
    line += ", " + (s.detail.empty() ? std::to_string(s.shards) + " shards, " + format_bytes(s.bytes) : s.detail);
    if (s.uploaded_shards >= 0) line += ", " + std::to_string(s.uploaded_shards) + " uploaded, " + format_bytes(s.staged_bytes) + " staged";
    line += ", elapsed " + format_duration(elapsed_s);
    if (!eta.empty()) line += ", ETA " + eta;
    return line;
  }
  // Terminal form: the text fields first; the bar gets whatever width is left, and is dropped (then the
  // line truncated) on narrow terminals rather than wrapping, which would break the "\r" redraw.
  std::string fields = samples_text(s) + " " + s.unit + "  " + rate + " tok/s";
  if (!eta.empty()) fields += "  ETA " + eta;
  if (final) fields += "  in " + format_duration(elapsed_s);
  fields += "  " + (s.detail.empty() ? std::to_string(s.shards) + " shards  " + format_bytes(s.bytes) : s.detail);
  if (s.uploaded_shards >= 0) fields += "  " + std::to_string(s.uploaded_shards) + " up  " + format_bytes(s.staged_bytes) + " staged";
  std::string line = label + " ";
  const int usable = width - 1;  // never write the last column: some terminals wrap there
  if (s.total_samples >= 0) {
    // The percentage stays even when the bar does not fit.
    std::string pct = printf_string("%3.0f%% ", 100.0 * fraction(s));
    // The bar's width depends on the terminal only, so it does not jitter as the fields change length.
    int cells = std::min(30, std::max(10, usable / 4));
    int room = usable - static_cast<int>(line.size() + pct.size() + fields.size()) - 3;  // "[" "]" " "
    if (cells <= room) line += bar(fraction(s), cells) + " ";
    line += pct;
  }
  line += fields;
  if (usable > 0 && static_cast<int>(line.size()) > usable) line.resize(static_cast<size_t>(usable));
  return line;
}

ProgressSink ProgressSink::standard_error() {
  ProgressSink sink;
  sink.fd = STDERR_FILENO;
  sink.is_tty = ::isatty(STDERR_FILENO) == 1;
  if (const char* env = std::getenv("FME_PROGRESS_INTERVAL"); env && *env) {  // a cluster's logs may want fewer lines, or more
    char* end = nullptr;
    const double s = std::strtod(env, &end);
    if (end == env || *end != '\0' || !(s > 0) || s > 86400)
      throw ConfigError(std::string("FME_PROGRESS_INTERVAL='") + env + "': expected the seconds between progress log lines (> 0)");
    sink.log_interval = std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
  }
  return sink;
}

Progress::Progress(std::string label, bool quiet) : Progress(std::move(label), quiet, ProgressSink::standard_error()) {}

Progress::Progress(std::string label, bool quiet, ProgressSink sink)
    : label_(std::move(label)), quiet_(quiet), sink_(std::move(sink)) {
  start_ = now();
  last_write_ = start_;
}

Progress::~Progress() {
  // An interrupted job (exception unwinding) must not leave the shell prompt glued to the status line.
  std::lock_guard<std::mutex> lock(mu_);
  if (!quiet_ && !finished_ && wrote_ && sink_.is_tty) write_all("\n");
}

Progress::Clock::time_point Progress::now() const { return sink_.now ? sink_.now() : Clock::now(); }

int Progress::terminal_width() const {
  if (sink_.width > 0) return sink_.width;
  struct winsize ws {};
  if (::ioctl(sink_.fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 100;
}

void Progress::write_all(const std::string& s) {
  // Progress is best effort: a closed or full stderr must not abort the job, so errors are dropped.
  size_t done = 0;
  while (done < s.size()) {
    ssize_t r = ::write(sink_.fd, s.data() + done, s.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    done += static_cast<size_t>(r);
  }
}

void Progress::draw_locked(const ProgressStats& stats, bool final) {
  Clock::time_point t = now();
  double elapsed = std::chrono::duration<double>(t - start_).count();
  if (sink_.is_tty) {
    std::string line = format_progress_line(label_, stats, elapsed, true, final, terminal_width());
    std::string out = "\r" + line;
    // Blank what is left of a longer previous line (e.g. after an ETA disappeared).
    if (last_len_ > line.size()) out += std::string(last_len_ - line.size(), ' ');
    last_len_ = line.size();
    if (final) out += "\n";
    write_all(out);
  } else {
    write_all(format_progress_line(label_, stats, elapsed, false, final, 0) + "\n");
  }
  last_write_ = t;
  wrote_ = true;
}

// The token rate over the updates of the last minute (what the job does now, not its average since a slow
// start), and the ETA of what is left at that rate.
void Progress::estimate_locked(ProgressStats& s) {
  const Clock::time_point t = now();
  if (recent_.empty() || recent_.back().second != s.tokens || t - recent_.back().first >= std::chrono::seconds(1))
    recent_.emplace_back(t, s.tokens);
  while (recent_.size() > 2 && t - recent_[1].first >= std::chrono::minutes(1)) recent_.pop_front();
  const double span = std::chrono::duration<double>(t - recent_.front().first).count();
  if (span < 1.0 || s.recent_tokens_per_s >= 0) return;
  s.recent_tokens_per_s = static_cast<double>(s.tokens - recent_.front().second) / span;
  if (s.total_samples > 0 && s.samples > 0 && s.recent_tokens_per_s > 0) {
    const double left = static_cast<double>(std::max<int64_t>(0, s.total_samples - s.samples)) *
                        (static_cast<double>(s.tokens) / static_cast<double>(s.samples));
    s.eta_s = left / s.recent_tokens_per_s;
  }
}

void Progress::update(const ProgressStats& stats_in) {
  if (quiet_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  ProgressStats stats = stats_in;
  estimate_locked(stats);
  auto interval = sink_.is_tty ? sink_.redraw_interval : sink_.log_interval;
  // A terminal shows the first update at once; a log waits a full interval so short jobs log one line.
  bool due = (sink_.is_tty && !wrote_) || now() - last_write_ >= interval;
  if (due) draw_locked(stats, false);
}

void Progress::finish(const ProgressStats& stats) {
  if (quiet_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  draw_locked(stats, true);
}

}  // namespace fme
