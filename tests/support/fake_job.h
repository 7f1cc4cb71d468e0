// A migrate::JobContext that records what a migration reports, and
// cancels when told to: for unit tests of the transfer types.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "migrate/context.h"

namespace vmshift::testing {

using migrate::JobContext;
using migrate::StepState;

struct StepCall {
  std::size_t index;
  StepState state;
  std::string detail;
};

class FakeJob : public JobContext {
 public:
  void step(std::size_t index, StepState state, const std::string& detail) override {
    steps.push_back({index, state, detail});
  }
  void progress(std::string_view phase, std::uint64_t done, std::uint64_t total) override {
    phases.emplace_back(phase);
    last_done = done;
    last_total = total;
    if (cancel_on_progress) cancel = true;
  }
  void pause(std::chrono::milliseconds ms) override { paused = ms; }
  void save_state(const std::string& json) override { saved.push_back(json); }
  bool cancel_requested() override { return cancel; }
  void note(const std::string& message) override { notes.push_back(message); }
  void checkpoint(std::string_view point) override {
    points.emplace_back(point);
    if (point == cancel_at) cancel = true;
  }

  // The last state recorded for a step, if any.
  std::optional<StepState> last(std::size_t index) const {
    std::optional<StepState> s;
    for (const auto& c : steps)
      if (c.index == index) s = c.state;
    return s;
  }
  // "index:state" for every call, to check the order.
  std::vector<std::string> trace() const {
    std::vector<std::string> out;
    for (const auto& c : steps)
      out.push_back(std::to_string(c.index) + ":" + std::to_string(static_cast<int>(c.state)));
    return out;
  }

  std::vector<StepCall> steps;
  std::vector<std::string> phases, saved, points, notes;
  std::uint64_t last_done = 0, last_total = 0;
  std::optional<std::chrono::milliseconds> paused;
  bool cancel = false, cancel_on_progress = false;
  std::string cancel_at;
};

}  // namespace vmshift::testing
