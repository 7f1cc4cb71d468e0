// A point in time by which a wait must be over. Every blocking call in
// vmshift takes one; there is no "wait forever".
#pragma once

#include <algorithm>
#include <chrono>
#include <climits>

namespace vmshift {

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  static Deadline after(Clock::duration d) { return Deadline(Clock::now() + d); }
  static Deadline at(Clock::time_point t) { return Deadline(t); }

  Clock::time_point time_point() const { return at_; }
  bool expired() const { return Clock::now() >= at_; }

  // Time left, never negative.
  std::chrono::milliseconds remaining() const {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(at_ - Clock::now());
    return std::max(left, std::chrono::milliseconds(0));
  }

  // Time left as a poll(2) timeout: 0 when expired, capped at INT_MAX.
  int poll_timeout_ms() const {
    auto left = remaining().count();
    return static_cast<int>(std::min<long long>(left, INT_MAX));
  }

  // The earlier of two deadlines.
  Deadline min(const Deadline& other) const { return Deadline(std::min(at_, other.at_)); }

 private:
  explicit Deadline(Clock::time_point t) : at_(t) {}
  Clock::time_point at_;
};

}  // namespace vmshift
