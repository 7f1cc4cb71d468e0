#include "core/progress.h"

#include <algorithm>
#include <cmath>

namespace vmshift::core {

namespace {

// Samples closer together than this are too noisy to give a rate.
constexpr double kMinInterval = 0.1;  // seconds
// Time constant of the moving average.
constexpr double kTimeConstant = 3.0;  // seconds

}  // namespace

void ProgressMeter::update(std::int64_t done, std::int64_t total, Clock::time_point now) {
  done_ = done;
  total_ = total;
  if (!last_time_) {
    last_time_ = now;
    last_done_ = done;
    return;
  }
  double dt = std::chrono::duration<double>(now - *last_time_).count();
  // Keep the older sample as the base until enough time has passed (this
  // also ignores a clock that went backwards).
  if (dt < kMinInterval) return;
  // Work done can go backwards (a copy that starts over); that is no rate.
  double sample = std::max(0.0, static_cast<double>(done - last_done_) / dt);
  if (!have_rate_) {
    rate_ = sample;
    have_rate_ = true;
  } else {
    double alpha = 1.0 - std::exp(-dt / kTimeConstant);
    rate_ += alpha * (sample - rate_);
  }
  last_time_ = now;
  last_done_ = done;
}

std::optional<double> ProgressMeter::eta_seconds() const {
  if (rate_ <= 0) return std::nullopt;
  double left = static_cast<double>(std::max<std::int64_t>(0, total_ - done_));
  return left / rate_;
}

double ProgressMeter::percent() const {
  if (total_ <= 0) return 0;
  double p = 100.0 * static_cast<double>(done_) / static_cast<double>(total_);
  return std::clamp(p, 0.0, 100.0);
}

}  // namespace vmshift::core
