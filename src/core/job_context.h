// What a running job reports, as the job store and the CLI see it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/deadline.h"
#include "base/error.h"
#include "base/json.h"
#include "core/job_lease.h"
#include "core/job_store.h"
#include "core/progress.h"
#include "migrate/context.h"

namespace vmshift::core {

// What the CLI shows while a job runs.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void started(const Job&) {}
  virtual void waiting(const std::string& /*why*/) {}
  virtual void step(const std::string& /*name*/, StepState, const std::string& /*detail*/) {}
  virtual void progress(std::string_view /*phase*/, const ProgressMeter&) {}
  virtual void note(const std::string& /*message*/) {}
  // Type-specific figures of the running phase (see migrate::JobContext).
  virtual void detail(const Json& /*figures*/) {}
};

// The job as a migration sees it (migrate::JobContext): every report goes
// to the store and the observer.
//
// Undo never depends on the job store being writable: no report throws. A
// write the store refuses (locked past its busy timeout, disk full, I/O
// error) is logged and kept in memory, and written with the next report
// that finds the store writable again (tried at most every kStoreRetry,
// so that a locked store does not stall a paused VM) and at finish. Until
// the switch-over (the checkpoints "switched" and "restored", or the
// measured pause) a store that cannot be written makes cancel_requested()
// true: the job undoes itself from memory, as if cancelled. After it the
// job goes on to completion.
class StoreContext : public migrate::JobContext {
 public:
  StoreContext(JobStore& store, std::int64_t id, std::vector<std::string> steps, Observer& obs,
               const std::atomic<bool>* interrupted);

  void step(std::size_t index, migrate::StepState state, const std::string& detail) override;
  void progress(std::string_view phase, std::uint64_t done, std::uint64_t total) override;
  void pause(std::chrono::milliseconds measured) override;
  void save_state(const std::string& json) override;
  bool cancel_requested() override;
  void note(const std::string& message) override;
  void detail(const Json& figures) override;
  void checkpoint(std::string_view point) override;
  void flush();
  // Ends the job in the store (with whatever is still kept in memory),
  // trying until deadline; false if the store could not be written by then.
  bool finish(JobState state, const std::string& message, Deadline deadline);
  // Why the store cannot be written now ("" if it can).
  std::string store_problem() const { return problem_; }
  // The first write the store refused, if any ("").
  std::string first_store_problem() const { return first_problem_; }
  // Whether the job was undone because the store could not be written.
  bool undone_for_store() const { return store_cancel_; }
  // The recovery data last reported (the store may hold an older one).
  const std::optional<std::string>& last_state() const { return last_state_; }
  // For recovery: a store that cannot be written does not ask for an undo.
  void never_undo_for_store() { switched_ = true; }
  // While the job only waits (e.g. held at a checkpoint) it writes
  // nothing: the heartbeat's failing renewals tell that the store cannot
  // be written.
  void watch(const Heartbeat& heartbeat) { heartbeat_ = &heartbeat; }

  static constexpr std::chrono::seconds kStoreRetry{15};

 private:
  void write(bool now = false);
  void failed(const Error& e);
  bool has_pending() const {
    return pending_state_ || !pending_steps_.empty() || pending_pause_ || pending_cancelling_ ||
           pending_progress_;
  }

  JobStore& store_;
  std::int64_t id_;
  std::vector<std::string> steps_;
  Observer& obs_;
  const std::atomic<bool>* interrupted_;
  ProgressMeter meter_;
  bool cancelling_ = false;
  std::chrono::steady_clock::time_point last_write_{};
  std::chrono::steady_clock::time_point last_cancel_check_{};
  // Store failures, and what is kept in memory until it can be written.
  bool switched_ = false;
  bool store_cancel_ = false;
  std::string problem_, first_problem_;
  std::chrono::steady_clock::time_point retry_at_{};
  std::map<std::size_t, std::pair<StepState, std::string>> pending_steps_;
  std::optional<std::string> pending_state_;
  std::optional<std::int64_t> pending_pause_;
  bool pending_progress_ = false;
  bool pending_cancelling_ = false;
  std::optional<std::string> last_state_;
  const Heartbeat* heartbeat_ = nullptr;
};

}  // namespace vmshift::core
