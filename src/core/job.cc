#include "core/job.h"

namespace vmshift::core {

std::string_view to_string(JobState s) noexcept {
  switch (s) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kCancelling:
      return "cancelling";
    case JobState::kCompleted:
      return "completed";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
    case JobState::kRolledBack:
      return "rolled-back";
  }
  return "unknown";
}

std::optional<JobState> job_state_from(std::string_view s) noexcept {
  for (JobState state :
       {JobState::kQueued, JobState::kRunning, JobState::kCancelling, JobState::kCompleted,
        JobState::kFailed, JobState::kCancelled, JobState::kRolledBack}) {
    if (to_string(state) == s) return state;
  }
  return std::nullopt;
}

bool is_terminal(JobState s) noexcept {
  switch (s) {
    case JobState::kQueued:
    case JobState::kRunning:
    case JobState::kCancelling:
      return false;
    case JobState::kCompleted:
    case JobState::kFailed:
    case JobState::kCancelled:
    case JobState::kRolledBack:
      return true;
  }
  return false;
}

std::string_view to_string(StepState s) noexcept {
  switch (s) {
    case StepState::kPending:
      return "pending";
    case StepState::kRunning:
      return "running";
    case StepState::kDone:
      return "done";
    case StepState::kFailed:
      return "failed";
    case StepState::kSkipped:
      return "skipped";
    case StepState::kUndone:
      return "undone";
  }
  return "unknown";
}

std::optional<StepState> step_state_from(std::string_view s) noexcept {
  for (StepState state : {StepState::kPending, StepState::kRunning, StepState::kDone,
                          StepState::kFailed, StepState::kSkipped, StepState::kUndone}) {
    if (to_string(state) == s) return state;
  }
  return std::nullopt;
}

std::string_view to_string(LimitClass c) noexcept {
  switch (c) {
    case LimitClass::kStorage:
      return "storage";
    case LimitClass::kLive:
      return "live";
  }
  return "unknown";
}

}  // namespace vmshift::core
