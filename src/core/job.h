// A migration job, as every vmshift process sees it in the job store.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmshift::core {

using TimePoint = std::chrono::system_clock::time_point;

enum class JobState {
  kQueued,  // waiting for a free slot on its hosts
  kRunning,
  kCancelling,  // cancel requested; the owner is undoing its steps
  kCompleted,
  kFailed,      // stopped by an error; `error` says what state the VM and files are in
  kCancelled,   // stopped on request; the VM is where it was
  kRolledBack,  // its process died before the switch-over; recovery put things back
};
std::string_view to_string(JobState s) noexcept;
std::optional<JobState> job_state_from(std::string_view s) noexcept;
bool is_terminal(JobState s) noexcept;

enum class StepState { kPending, kRunning, kDone, kFailed, kSkipped, kUndone };
std::string_view to_string(StepState s) noexcept;
std::optional<StepState> step_state_from(std::string_view s) noexcept;

// Which per-host limit a job counts against (Hyper-V/SCVMM: 2 live and 2
// storage migrations per host at once; a live VSM counts as one of each).
enum class LimitClass { kStorage, kLive };
std::string_view to_string(LimitClass c) noexcept;

struct Slot {
  std::string host;
  LimitClass kind = LimitClass::kStorage;
  bool operator==(const Slot&) const = default;
};

struct Step {
  std::string name;
  StepState state = StepState::kPending;
  std::optional<TimePoint> started;
  std::optional<TimePoint> ended;
  std::string detail;
};

// The process that runs a job: it renews the lease while it works. A lease
// whose process is gone (pid no longer exists, or exists with another start
// time) is stale; a live process's lease never is (JobStore::lease_alive).
struct Lease {
  std::int64_t pid = 0;
  std::int64_t pid_start = 0;  // the process's start time (/proc/PID/stat field 22)
  TimePoint expires{};
};

struct Job {
  std::int64_t id = 0;
  std::string vm;
  std::string vm_uuid;  // see NewJob
  std::string type;     // "live-storage", ...
  std::string source_host;
  std::string dest_host;
  JobState state = JobState::kQueued;
  std::vector<Slot> slots;  // what it counts against while running
  std::vector<Step> steps;
  std::int64_t bytes_total = 0;
  std::int64_t bytes_done = 0;
  double rate = 0;  // bytes per second
  std::optional<double> eta_seconds;
  std::optional<std::int64_t> pause_ms;  // measured guest pause (e.g. the pivot)
  TimePoint created{};
  std::optional<TimePoint> started;
  std::optional<TimePoint> ended;
  std::string error;       // for failed/cancelled/rolled-back: what state the VM and files are in
  std::string result;      // for completed: a one-line summary
  std::string params;      // JSON text: what the job does (type-specific)
  std::string state_data;  // JSON text: what recovery needs (type-specific), updated as it goes
  bool cancel_requested = false;
  std::optional<Lease> lease;
};

}  // namespace vmshift::core
