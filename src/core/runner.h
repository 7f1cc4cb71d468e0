// Running jobs: waiting for a slot, holding the lease, reporting progress,
// finishing, and recovering jobs whose process died.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/codec.h"
#include "base/deadline.h"
#include "base/error.h"
#include "base/json.h"
#include "core/job_store.h"
#include "core/progress.h"
#include "guest/guest.h"
#include "hosts/inventory.h"
#include "migrate/context.h"
#include "migrate/copy_files.h"
#include "migrate/live_migration.h"
#include "migrate/live_storage.h"

namespace vmshift::core {

// Where a job's guest is: a libvirt VM on an inventory host, or a bare QEMU
// reached over its QMP socket.
struct GuestSpec {
  std::string kind;  // "libvirt" or "qmp"
  std::string host;  // libvirt: inventory host; qmp: "local"
  std::string vm;
  std::string socket;
};
std::unique_ptr<guest::Guest> open_guest(const GuestSpec& spec, const hosts::Inventory& inventory);

// For move-storage --force: the files the defined VMs of every inventory
// host that sees a destination use (path -> who); empty without --force
// or for a bare QEMU guest (no inventory host to ask). Throws when a host
// cannot be asked.
std::map<std::string, std::string> move_storage_in_use(const hosts::Inventory& inventory,
                                                       const GuestSpec& spec,
                                                       const migrate::LiveStorageOptions& options);

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

struct JobOutcome {
  JobState state = JobState::kFailed;
  std::string message;
};

// Renews a job's lease from a database connection of its own, every
// interval, until destroyed. A renewal that fails (the store locked, an
// I/O error) is logged and tried again at the next beat: the lease stays
// alive anyway while this process lives (JobStore::lease_alive), and the
// expiry the renewals record is what others see. lost() tells whether
// another process holds the lease now.
class Heartbeat {
 public:
  static constexpr std::chrono::milliseconds kInterval{3000};
  Heartbeat(const std::string& store_path, std::int64_t id,
            std::chrono::milliseconds interval = kInterval,
            std::chrono::milliseconds busy_timeout = JobStore::kBusyTimeout);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  bool lost() const { return lost_.load(); }
  // Why the last renewal failed ("" if it worked).
  std::string problem() const {
    std::lock_guard lock(problem_mu_);
    return problem_;
  }

 private:
  void run(const std::string& path, std::int64_t id, std::chrono::milliseconds interval,
           std::chrono::milliseconds busy_timeout);
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> lost_{false};
  mutable std::mutex problem_mu_;
  std::string problem_;
  std::thread thread_;
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

LimitFn limits_from(const hosts::Inventory& inventory);

// Who the guest is, for one active job per VM (NewJob::vm_uuid): a libvirt
// domain's UUID, or "qmp:" and the real path of a bare QEMU's socket.
std::string guest_uuid(const GuestSpec& spec, const hosts::Inventory& inventory);

// These throw Error(kFailedPrecondition) naming the other job if the VM
// (vm_uuid) has an active job already.
std::int64_t create_live_storage_job(JobStore& store, const GuestSpec& spec,
                                     const std::string& vm_uuid,
                                     const migrate::LiveStorageOptions& options);
// A live or live-vsm job from a plan whose checks passed.
std::int64_t create_live_migration_job(JobStore& store, const std::string& type,
                                       const migrate::LiveMigrationPlan& plan,
                                       const std::string& vm_uuid,
                                       const migrate::LiveMigrationOptions& options);
std::int64_t create_copy_job(JobStore& store, const migrate::CopyJobOptions& options);
// Compares a file on one host with one on another (or the same), chunk
// by chunk: the result of transfer::verify, and the two files' names.
struct Comparison {
  transfer::VerifyResult result;
  std::string a, b;
  std::uint64_t chunk_size = 0;
};
Comparison compare_files(const hosts::Inventory& inventory, const std::string& host_a,
                         const std::string& path_a, const std::string& host_b,
                         const std::string& path_b, std::uint64_t chunk_size);

// Whether a failed job of this type can continue (`vmshift jobs resume`).
bool resumable(const std::string& type);

// The per-host slots a job of this type holds while it runs.
std::vector<Slot> slots_for(const std::string& type, const std::string& source,
                            const std::string& dest);

// Runs a queued job in this process until it ends. Waits for a slot until
// queue_deadline (then the job is cancelled: nothing was changed). A set
// `interrupted` (Ctrl-C) counts as a cancel request.
JobOutcome run_job(const std::string& store_path, std::int64_t id,
                   const hosts::Inventory& inventory, Observer& observer, Deadline queue_deadline,
                   const std::atomic<bool>* interrupted = nullptr);

// Finishes or undoes every job whose vmshift process died. One line per job
// for the user.
std::vector<std::string> recover_stale_jobs(JobStore& store, const hosts::Inventory& inventory);

}  // namespace vmshift::core

template <>
struct vmshift::codec::Fields<vmshift::core::GuestSpec> {
  using T = core::GuestSpec;
  static constexpr auto list = std::tuple{field("kind", &T::kind), field("host", &T::host),
                                          field("vm", &T::vm), field("socket", &T::socket)};
};
