// Tests of util/progress: the plain log lines written when stderr is not a terminal (exact format and
// interval), the throttled "\r" redraw on a terminal, quiet mode, and concurrent updates. Output goes to
// a temp file through an injected sink, and time is driven by a fake clock.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "util/error.h"
#include "util/file.h"
#include "util/progress.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "fme_progress_XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// A file the sink writes into, read back by the test.
struct Capture {
  TempDir dir;
  std::string path = dir / "out.txt";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ~Capture() { ::close(fd); }
  std::string text() const { return fme::read_file(path); }
};

// Manual time: tests set `t` and the Progress sees it.
struct FakeClock {
  std::shared_ptr<Clock::time_point> t = std::make_shared<Clock::time_point>(Clock::time_point{} + std::chrono::hours(1));
  std::function<Clock::time_point()> fn() const {
    auto p = t;
    return [p] { return *p; };
  }
  void advance(milliseconds d) { *t += d; }
};

fme::ProgressSink sink_for(const Capture& c, bool tty, const FakeClock& clock) {
  fme::ProgressSink s;
  s.fd = c.fd;
  s.is_tty = tty;
  s.width = 80;
  s.now = clock.fn();
  return s;
}

fme::ProgressStats stats(int64_t samples, int64_t total, int64_t tokens, int64_t shards, int64_t bytes) {
  fme::ProgressStats s;
  s.samples = samples;
  s.total_samples = total;
  s.tokens = tokens;
  s.shards = shards;
  s.bytes = bytes;
  return s;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

TEST(Progress, RedirectedStderrGetsPlainLogLines) {
  // The real default: stderr redirected to a file is not a TTY, so no "\r" redraws, only log lines.
  Capture c;
  fflush(stderr);
  int saved = ::dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ASSERT_GE(::dup2(c.fd, STDERR_FILENO), 0);
  {
    fme::Progress p("extract", false);
    p.update(stats(1, 10, 100, 0, 0));  // well under 10 s: no line yet
    p.update(stats(5, 10, 500, 1, 2048));
    p.finish(stats(10, 10, 1000, 2, 4096));
    p.update(stats(11, 10, 1100, 2, 4096));  // after finish: ignored
  }
  fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::string text = c.text();
  EXPECT_EQ(text.find('\r'), std::string::npos) << text;
  auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), 1u) << text;
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(lines[0].rfind("extract: done, 10/10 samples (100.0%), 1000 tokens (", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(" tok/s), 2 shards, 4.0 KiB, elapsed 0s"), std::string::npos) << lines[0];
}

TEST(Progress, LogLineFormatAndInterval) {
  Capture c;
  FakeClock clock;
  fme::Progress p("extract", false, sink_for(c, false, clock));
  p.update(stats(0, 1000, 0, 0, 0));
  clock.advance(milliseconds(5000));
  p.update(stats(100, 1000, 20000, 0, 0));
  EXPECT_EQ(c.text(), "");  // nothing before the first 10 s
  clock.advance(milliseconds(5000));
  p.update(stats(250, 1000, 50000, 2, 1572864));
  clock.advance(milliseconds(3000));
  p.update(stats(300, 1000, 60000, 2, 1572864));  // 3 s after the last line: skipped
  clock.advance(milliseconds(27000));
  p.finish(stats(1000, 1000, 200000, 8, 6291456));
  auto lines = lines_of(c.text());
  ASSERT_EQ(lines.size(), 2u) << c.text();
  // 250 of 1000 in 10 s -> 750 left at 25/s = 30 s; 50000 tokens / 10 s = 5.0k tok/s.
  EXPECT_EQ(lines[0],
            "extract: 250/1000 samples (25.0%), 50000 tokens (5.0k tok/s), 2 shards, 1.5 MiB, elapsed 10s, ETA 30s");
  EXPECT_EQ(lines[1],
            "extract: done, 1000/1000 samples (100.0%), 200000 tokens (5.0k tok/s), 8 shards, 6.0 MiB, elapsed 40s");
}

// A run mirrored to object storage also says how many shards are uploaded and how many bytes wait for it.
TEST(Progress, UploadsShowUploadedShardsAndStagedBytes) {
  Capture c;
  FakeClock clock;
  fme::Progress p("extract", false, sink_for(c, false, clock));
  fme::ProgressStats s = stats(250, 1000, 50000, 5, 5 << 20);
  s.uploaded_shards = 3;
  s.staged_bytes = 2 << 20;
  clock.advance(milliseconds(10000));
  p.update(s);
  EXPECT_EQ(lines_of(c.text()).at(0),
            "extract: 250/1000 samples (25.0%), 50000 tokens (5.0k tok/s), 5 shards, 5.0 MiB, 3 uploaded, 2.0 MiB staged, "
            "elapsed 10s, ETA 30s");
}

// The rate shown is over the last minute, not the average since a slow start; the ETA divides the tokens
// left (samples left at the tokens per sample so far) by it. The "done" line keeps the average.
TEST(Progress, RateAndEtaFollowTheLastMinute) {
  Capture c;
  FakeClock clock;
  fme::Progress p("extract", false, sink_for(c, false, clock));
  p.update(stats(0, 200, 0, 0, 0));
  clock.advance(milliseconds(60000));
  p.update(stats(10, 200, 6000, 0, 0));  // 100 tok/s for the first minute (logged: the average, 100)
  clock.advance(milliseconds(60000));
  p.update(stats(110, 200, 66000, 1, 1024));  // then 1000 tok/s
  p.finish(stats(200, 200, 96000, 2, 2048));
  auto lines = lines_of(c.text());
  ASSERT_EQ(lines.size(), 3u) << c.text();
  EXPECT_NE(lines[1].find("66000 tokens (1.0k tok/s)"), std::string::npos) << lines[1];
  // 90 samples left x 600 tokens per sample = 54000 tokens at 1000/s.
  EXPECT_NE(lines[1].find("ETA 54s"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("96000 tokens (800 tok/s)"), std::string::npos) << lines[2];
}

TEST(Progress, LogIntervalIsConfigurable) {
  Capture c;
  FakeClock clock;
  auto sink = sink_for(c, false, clock);
  sink.log_interval = milliseconds(1000);
  fme::Progress p("tok", false, sink);
  for (int i = 1; i <= 10; ++i) {
    clock.advance(milliseconds(500));
    p.update(stats(i, -1, i * 10, 0, 0));
  }
  EXPECT_EQ(lines_of(c.text()).size(), 5u) << c.text();  // every second over 5 s
}

// FME_PROGRESS_INTERVAL (seconds) sets stderr's log interval; anything but a positive number is refused.
TEST(Progress, LogIntervalFromTheEnvironment) {
  setenv("FME_PROGRESS_INTERVAL", "0.25", 1);
  EXPECT_EQ(fme::ProgressSink::standard_error().log_interval, milliseconds(250));
  for (const char* bad : {"0", "-1", "fast", "10s"}) {
    setenv("FME_PROGRESS_INTERVAL", bad, 1);
    try {
      fme::ProgressSink::standard_error();
      ADD_FAILURE() << bad;
    } catch (const fme::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("FME_PROGRESS_INTERVAL='") + bad + "': expected the seconds"), std::string::npos)
          << e.what();
    }
  }
  unsetenv("FME_PROGRESS_INTERVAL");
  EXPECT_EQ(fme::ProgressSink::standard_error().log_interval, milliseconds(10000));
}

TEST(Progress, UnknownTotalHasNoPercentOrEta) {
  Capture c;
  FakeClock clock;
  fme::Progress p("gen", false, sink_for(c, false, clock));
  clock.advance(milliseconds(12000));
  p.update(stats(6, -1, 1200, 0, 100));
  EXPECT_EQ(c.text(), "gen: 6 samples, 1200 tokens (100 tok/s), 0 shards, 100 B, elapsed 12s\n");
}

TEST(Progress, QuietWritesNothing) {
  Capture c;
  FakeClock clock;
  for (bool tty : {false, true}) {
    fme::Progress p("x", true, sink_for(c, tty, clock));
    p.update(stats(1, 2, 3, 0, 0));
    clock.advance(milliseconds(60000));
    p.update(stats(2, 2, 3, 0, 0));
    p.finish(stats(2, 2, 3, 0, 0));
  }
  EXPECT_EQ(c.text(), "");
}

TEST(Progress, TerminalRedrawsOneLineAtMostFiveTimesASecond) {
  Capture c;
  FakeClock clock;
  {
    auto sink = sink_for(c, true, clock);
    sink.width = 100;
    fme::Progress p("extract", false, sink);
    p.update(stats(0, 100, 0, 0, 0));  // first update draws at once
    for (int i = 1; i <= 10; ++i) {
      clock.advance(milliseconds(100));  // 1 s in 100 ms steps -> a redraw every 200 ms
      p.update(stats(i * 5, 100, i * 500, 0, i * 1000));
    }
    clock.advance(milliseconds(1000));
    p.finish(stats(100, 100, 10000, 3, 3 << 20));
  }
  std::string text = c.text();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\r'), 1 + 5 + 1) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << "only finish ends the line";
  EXPECT_EQ(text.back(), '\n');
  std::string last = text.substr(text.rfind('\r') + 1);
  last.pop_back();
  EXPECT_EQ(last.rfind("extract [", 0), 0u) << last;
  EXPECT_NE(last.find("] 100% 100/100 samples"), std::string::npos) << last;
  EXPECT_NE(last.find("3 shards  3.0 MiB"), std::string::npos) << last;
  // Each redraw fits in the terminal width so "\r" keeps working, and the bar keeps one width (no jitter).
  size_t start = 0;
  while ((start = text.find('\r', start)) != std::string::npos) {
    size_t end = text.find_first_of("\r\n", start + 1);
    std::string line = text.substr(start + 1, end - start - 1);
    EXPECT_LE(line.size(), 99u);
    EXPECT_EQ(line.find(']') - line.find('['), 25u) << line;
    start = end;
  }
}

TEST(Progress, TerminalMidRunShowsBarRateEtaShardsBytes) {
  Capture c;
  FakeClock clock;
  auto sink = sink_for(c, true, clock);
  sink.width = 100;
  fme::Progress p("extract", false, sink);
  clock.advance(milliseconds(10000));
  p.update(stats(25, 100, 12000, 1, 512 << 20));
  std::string text = c.text();
  EXPECT_EQ(text,
            "\rextract [######..................]  25% 25/100 samples  1.2k tok/s  ETA 30s  1 shards  512.0 MiB");
}

TEST(Progress, NarrowTerminalDropsTheBarAndTruncates) {
  Capture c;
  FakeClock clock;
  auto sink = sink_for(c, true, clock);
  sink.width = 30;
  fme::Progress p("extract", false, sink);
  clock.advance(milliseconds(10000));
  p.update(stats(25, 100, 12000, 1, 1000));
  std::string text = c.text();
  ASSERT_EQ(text[0], '\r');
  EXPECT_EQ(text.size() - 1, 29u) << text;
  EXPECT_EQ(text.find('['), std::string::npos) << text;
  EXPECT_EQ(text.rfind("\rextract  25% 25/100 samples", 0), 0u) << text;
}

TEST(Progress, ShorterRedrawBlanksTheOldTail) {
  Capture c;
  FakeClock clock;
  fme::Progress p("x", false, sink_for(c, true, clock));
  clock.advance(milliseconds(1000));
  p.update(stats(1, -1, 10, 0, 123456789));  // long bytes field
  clock.advance(milliseconds(1000));
  p.update(stats(2, -1, 20, 0, 1));  // shorter
  std::string text = c.text();
  size_t second = text.rfind('\r');
  EXPECT_EQ(text.size() - second, second) << "second redraw padded to the first one's length";
}

TEST(Progress, ConcurrentUpdatesWriteWholeLines) {
  Capture c;
  fme::ProgressSink sink;
  sink.fd = c.fd;
  sink.is_tty = false;
  sink.log_interval = milliseconds(0);  // write on every update to maximise interleaving
  {
    fme::Progress p("mt", false, sink);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&p, t] {
        for (int i = 0; i < 500; ++i) p.update(stats(t * 1000 + i, -1, i, 0, 0));
      });
    }
    for (auto& th : threads) th.join();
    p.finish(stats(4000, 4000, 0, 0, 0));
  }
  auto lines = lines_of(c.text());
  EXPECT_EQ(lines.size(), 2001u);
  for (const auto& l : lines) ASSERT_EQ(l.rfind("mt: ", 0), 0u) << l;
  EXPECT_EQ(lines.back().rfind("mt: done, 4000/4000 samples", 0), 0u);
}

TEST(Progress, Formatters) {
  EXPECT_EQ(fme::format_bytes(0), "0 B");
  EXPECT_EQ(fme::format_bytes(1023), "1023 B");
  EXPECT_EQ(fme::format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(fme::format_bytes(int64_t{5} << 20), "5.0 MiB");
  EXPECT_EQ(fme::format_bytes((int64_t{3} << 30) / 2), "1.50 GiB");
  EXPECT_EQ(fme::format_duration(0), "0s");
  EXPECT_EQ(fme::format_duration(59.4), "59s");
  EXPECT_EQ(fme::format_duration(185), "3m05s");
  EXPECT_EQ(fme::format_duration(3725), "1h02m");
  EXPECT_EQ(fme::format_rate(950), "950");
  EXPECT_EQ(fme::format_rate(12345), "12.3k");
  EXPECT_EQ(fme::format_rate(1.25e6), "1.25M");
}

}  // namespace
