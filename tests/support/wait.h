// Polling with a deadline, for tests: never a bare sleep.
#pragma once

#include <chrono>
#include <thread>

namespace vmshift::testing {

// Checks cond every 100 ms until it holds (true) or the limit passes (false).
template <typename F>
bool wait_until(std::chrono::steady_clock::duration limit, F&& cond) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

}  // namespace vmshift::testing
