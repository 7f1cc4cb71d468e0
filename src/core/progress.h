// Progress arithmetic: rate and ETA from (time, bytes) samples.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace vmshift::core {

class ProgressMeter {
 public:
  using Clock = std::chrono::steady_clock;

  // Records bytes done of total at time now. Total may change (a mirror's
  // remaining work grows while the guest writes).
  void update(std::int64_t done, std::int64_t total, Clock::time_point now = Clock::now());

  std::int64_t done() const { return done_; }
  std::int64_t total() const { return total_; }
  // Bytes per second, smoothed (exponential moving average over ~3 s);
  // 0 until two samples at least 100 ms apart were seen.
  double rate() const { return rate_; }
  // Seconds left at the current rate; nullopt without a rate.
  std::optional<double> eta_seconds() const;
  // 0..100.
  double percent() const;

 private:
  std::int64_t done_ = 0;
  std::int64_t total_ = 0;
  double rate_ = 0;
  bool have_rate_ = false;  // a first rate was measured (rate_ may be 0)
  std::optional<Clock::time_point> last_time_;
  std::int64_t last_done_ = 0;
};

}  // namespace vmshift::core
