// A progress line with rate and ETA on stderr: redrawn in place on a terminal, one line per 10% otherwise
// (so logs of batch jobs stay readable).
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace bsim {

class Progress {
 public:
  Progress(long long total, std::string unit, bool quiet, long long already_done = 0)
      : total_(total), done0_(already_done), unit_(std::move(unit)), quiet_(quiet), tty_(isatty(2)),
        start_(std::chrono::steady_clock::now()) {}

  void update(long long done) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const int pct = total_ > 0 ? int(100 * done / total_) : 100;
    if (tty_) {
      if (done < total_ && std::chrono::duration<double>(now - last_).count() < 0.1) return;
    } else if (pct / 10 == last_decile_ && done < total_) {
      return;
    }
    last_ = now;
    last_decile_ = pct / 10;
    const double rate = elapsed > 0 ? double(done - done0_) / elapsed : 0.0;
    const double eta = rate > 0 ? double(total_ - done) / rate : 0.0;
    const int width = 30, filled = int(width * pct / 100);
    std::fprintf(stderr, "%s[%s%s] %lld/%lld %s %3d%%  %.1f %s/s  ETA %s%s", tty_ ? "\r" : "",
                 std::string(static_cast<size_t>(filled), '#').c_str(), std::string(static_cast<size_t>(width - filled), '.').c_str(), done,
                 total_, unit_.c_str(), pct, rate, unit_.c_str(), clock(eta).c_str(), tty_ ? "" : "\n");
    std::fflush(stderr);
  }
  void finish() {
    if (!quiet_ && tty_) std::fprintf(stderr, "\n");
  }
  double elapsed_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  static std::string clock(double s) {
    char buf[32];
    const long t = long(s + 0.5);
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    return buf;
  }
  long long total_, done0_;
  std::string unit_;
  bool quiet_, tty_;
  std::chrono::steady_clock::time_point start_, last_{};
  int last_decile_ = -1;
};

}  // namespace bsim
