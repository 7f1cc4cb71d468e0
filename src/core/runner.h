// Running jobs: waiting for a slot, holding the lease, reporting progress,
// finishing, and recovering jobs whose process died.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/deadline.h"
#include "core/job_store.h"
#include "core/progress.h"
#include "guest/guest.h"
#include "hosts/inventory.h"
#include "migrate/copy_files.h"
#include "migrate/live_migration.h"
#include "migrate/live_storage.h"
#include "qmp/json.h"

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
  virtual void detail(const qmp::Json& /*figures*/) {}
};

struct JobOutcome {
  JobState state = JobState::kFailed;
  std::string message;
};

LimitFn limits_from(const hosts::Inventory& inventory);

std::int64_t create_live_storage_job(JobStore& store, const GuestSpec& spec,
                                     const migrate::LiveStorageOptions& options);
// A live or live-vsm job from a plan whose checks passed.
std::int64_t create_live_migration_job(JobStore& store, const std::string& type,
                                       const migrate::LiveMigrationPlan& plan,
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
