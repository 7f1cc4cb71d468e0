// What a migration reports while it runs, and how it learns of a cancel.
// core/ implements it on a job in the job store; migrate/ never calls up.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"

namespace vmshift::migrate {

enum class StepState { kRunning, kDone, kFailed, kSkipped, kUndone };

class JobContext {
 public:
  virtual ~JobContext() = default;
  virtual void step(std::size_t index, StepState state, const std::string& detail = "") = 0;
  // phase: "copy", "pivot", ... for the progress display.
  virtual void progress(std::string_view phase, std::uint64_t done, std::uint64_t total) = 0;
  virtual void pause(std::chrono::milliseconds measured) = 0;
  // Type-specific figures of the running phase (e.g. a live migration's
  // memory and disk counters, dirty rate, pass); shown with --json.
  virtual void detail(const Json& figures) { (void)figures; }
  // What recovery needs if this process dies; saved before each change.
  virtual void save_state(const std::string& json) = 0;
  virtual bool cancel_requested() = 0;
  virtual void note(const std::string& message) = 0;
  // A named point of the run ("ready": every copy in sync, before the
  // switch; "switched": right after it). A fault-injection hook for tests (VMSHIFT_HOLD_AT) may
  // hold the job here until it is cancelled; otherwise returns at once.
  virtual void checkpoint(std::string_view point) { (void)point; }
};

enum class Outcome { kCompleted, kFailed, kCancelled, kRolledBack };

struct Result {
  Outcome outcome = Outcome::kFailed;
  // Completed: a summary. Otherwise: what happened and what state the VM
  // and its files are in now.
  std::string message;
};

// A message with what else went wrong on the way appended ("...; ...").
inline std::string with_problems(std::string message, const std::vector<std::string>& problems) {
  for (const auto& p : problems) message += "; " + p;
  return message;
}

}  // namespace vmshift::migrate
