// Waiting for a condition that nothing signals: asks it again every
// `interval` until it holds or the deadline passes. The one polling loop
// of vmshift; every wait has a deadline ("code which sleeps must be able
// to time out").
#pragma once

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "base/deadline.h"

namespace vmshift {

// Calls `done` until it returns true (then returns true) or the deadline
// has passed (then returns false). `done` is called at once, then after
// each interval; the last sleep is cut short at the deadline, and `done`
// is asked once more there. Exceptions from `done` go to the caller.
template <typename Predicate>
bool poll_until(Deadline deadline, std::chrono::milliseconds interval, Predicate&& done) {
  for (;;) {
    if (done()) return true;
    if (deadline.expired()) return false;
    std::this_thread::sleep_for(std::min(interval, deadline.remaining()));
  }
}

}  // namespace vmshift
