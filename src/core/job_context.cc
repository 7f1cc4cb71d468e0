#include "core/job_context.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>

#include "base/log.h"
#include "base/poll_until.h"

namespace vmshift::core {
namespace {

constexpr auto kCancelPoll = std::chrono::milliseconds(300);
constexpr auto kProgressWrite = std::chrono::milliseconds(500);
constexpr auto kHoldLimit = std::chrono::minutes(10);

StepState step_state(migrate::StepState s) {
  switch (s) {
    case migrate::StepState::kRunning:
      return StepState::kRunning;
    case migrate::StepState::kDone:
      return StepState::kDone;
    case migrate::StepState::kFailed:
      return StepState::kFailed;
    case migrate::StepState::kSkipped:
      return StepState::kSkipped;
    case migrate::StepState::kUndone:
      return StepState::kUndone;
  }
  return StepState::kFailed;
}

}  // namespace

StoreContext::StoreContext(JobStore& store, std::int64_t id, std::vector<std::string> steps,
                           Observer& obs, const std::atomic<bool>* interrupted)
    : store_(store), id_(id), steps_(std::move(steps)), obs_(obs), interrupted_(interrupted) {}

void StoreContext::step(std::size_t index, migrate::StepState state, const std::string& detail) {
  pending_steps_[index] = {step_state(state), detail};
  write();
  obs_.step(index < steps_.size() ? steps_[index] : "?", step_state(state), detail);
}

void StoreContext::progress(std::string_view phase, std::uint64_t done, std::uint64_t total) {
  meter_.update(static_cast<std::int64_t>(done), static_cast<std::int64_t>(total));
  auto now = std::chrono::steady_clock::now();
  if (now - last_write_ >= kProgressWrite) {
    pending_progress_ = true;
    last_write_ = now;
    write();
  }
  obs_.progress(phase, meter_);
}

void StoreContext::pause(std::chrono::milliseconds measured) {
  switched_ = true;  // every type measures its pause once the VM runs at the destination
  pending_pause_ = measured.count();
  write();
}

void StoreContext::save_state(const std::string& json) {
  last_state_ = json;
  pending_state_ = json;
  write();
}

bool StoreContext::cancel_requested() {
  if (cancelling_) return true;
  bool asked = interrupted_ != nullptr && interrupted_->load();
  auto now = std::chrono::steady_clock::now();
  if (!asked && !switched_ && problem_.empty() && heartbeat_ != nullptr) {
    if (std::string why = heartbeat_->problem(); !why.empty()) {
      std::string what = heartbeat_->lost() ? "this process no longer holds its lease"
                                            : "its lease could not be renewed";
      failed(Error(ErrorCode::kIo, fmt::format("{}: {}", what, why)));
    }
  }
  if (!asked && !switched_ && !problem_.empty()) asked = store_cancel_ = true;
  if (!asked && now >= retry_at_ && now - last_cancel_check_ >= kCancelPoll) {
    last_cancel_check_ = now;
    try {
      asked = store_.get(id_).cancel_requested;
    } catch (const Error& e) {
      failed(e);
      if (!switched_) asked = store_cancel_ = true;
    }
  }
  if (asked) {
    cancelling_ = true;
    pending_cancelling_ = true;
    write();
    obs_.note(store_cancel_ ? fmt::format("the job store cannot be written ({}): undoing what was "
                                          "done, from memory",
                                          first_problem_)
                            : "cancelling: undoing what was done");
  }
  return cancelling_;
}

void StoreContext::write(bool now) {
  if (!now && !problem_.empty() && std::chrono::steady_clock::now() < retry_at_) return;
  if (!has_pending()) return;
  bool wrote = false;
  try {
    // Recovery data first: it is what another process would act on.
    if (pending_state_) {
      store_.set_state_data(id_, *pending_state_);
      pending_state_.reset();
      wrote = true;
    }
    while (!pending_steps_.empty()) {
      auto it = pending_steps_.begin();
      try {
        store_.set_step(id_, it->first, it->second.first, it->second.second);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kInvalidArgument) throw;
        log::warn("job", "job {}: {}", id_, e.what());  // no such step: nothing to keep
      }
      pending_steps_.erase(it);
      wrote = true;
    }
    if (pending_pause_) {
      store_.set_pause(id_, *pending_pause_);
      pending_pause_.reset();
      wrote = true;
    }
    if (pending_cancelling_) {
      store_.set_state(id_, JobState::kCancelling);
      pending_cancelling_ = false;
      wrote = true;
    }
    if (pending_progress_) {
      store_.set_progress(id_, meter_.done(), meter_.total(), meter_.rate(), meter_.eta_seconds());
      pending_progress_ = false;
      wrote = true;
    }
    if (wrote && !problem_.empty()) {
      log::info("job", "job {}: the job store can be written again", id_);
      problem_.clear();
    }
  } catch (const Error& e) {
    failed(e);
  }
}

void StoreContext::failed(const Error& e) {
  if (problem_.empty())
    log::warn("job",
              "job {}: the job store cannot be written: {}; what the job reports is kept in "
              "memory and written when it can be",
              id_, e.what());
  problem_ = e.what();
  if (first_problem_.empty()) first_problem_ = problem_;
  retry_at_ = std::chrono::steady_clock::now() + kStoreRetry;
}

void StoreContext::note(const std::string& message) { obs_.note(message); }
void StoreContext::detail(const Json& figures) { obs_.detail(figures); }

// Fault injection for tests: VMSHIFT_HOLD_AT=POINT holds the job at that
// checkpoint until it is cancelled (or kHoldLimit passes), so a test can
// act on a job in a phase that is otherwise too short to hit. With
// VMSHIFT_HOLD_FILE=PATH the hold also ends, and the job goes on, once
// that file is gone.
void StoreContext::checkpoint(std::string_view point) {
  if (point == "switched" || point == "restored") switched_ = true;
  // VMSHIFT_FAIL_AT=POINT makes the step at that checkpoint fail.
  if (const char* fail = std::getenv("VMSHIFT_FAIL_AT"); fail != nullptr && point == fail)
    throw Error(ErrorCode::kCommandFailed,
                fmt::format("injected failure at {} (VMSHIFT_FAIL_AT)", point));
  const char* hold = std::getenv("VMSHIFT_HOLD_AT");
  if (hold == nullptr || point != hold) return;
  const char* file = std::getenv("VMSHIFT_HOLD_FILE");
  obs_.note(fmt::format("held at {} (VMSHIFT_HOLD_AT) until cancelled{}", point,
                        file != nullptr ? fmt::format(" or '{}' is removed", file) : ""));
  poll_until(Deadline::after(kHoldLimit), std::chrono::milliseconds(100), [&] {
    return cancel_requested() || (file != nullptr && !std::filesystem::exists(file));
  });
}

void StoreContext::flush() {
  pending_progress_ = true;
  write();
}

bool StoreContext::finish(JobState state, const std::string& message, Deadline deadline) {
  return poll_until(deadline, std::chrono::milliseconds(500), [&] {
    write(true);
    if (has_pending()) return false;
    try {
      store_.finish(id_, state, message);
      problem_.clear();
      return true;
    } catch (const Error& e) {
      failed(e);
      return false;
    }
  });
}

}  // namespace vmshift::core
