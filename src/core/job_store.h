// The job store: one SQLite database shared by every vmshift process of the
// user (WAL mode, busy timeout; every change in a transaction), so that
// `vmshift jobs` in one shell sees and controls a job running in another.
//
// Scheduling happens here too, so that per-host limits hold across
// processes: a queued job starts (try_start) only when every slot it needs
// has room and no older queued job waits for one of those slots.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/job.h"

struct sqlite3;

namespace vmshift::core {

struct NewJob {
  std::string vm;
  // Who the VM is, whatever its name: a libvirt domain's UUID, or "qmp:"
  // and the socket path of a bare QEMU. One active job per VM_uuid (see
  // create); empty for jobs that move no VM (copy).
  std::string vm_uuid;
  std::string type;
  std::string source_host;
  std::string dest_host;
  std::vector<Slot> slots;
  std::vector<std::string> steps;  // names, in order, all pending
  std::string params = "{}";
};

// How many jobs of a class may run on a host at once.
using LimitFn = std::function<int(const std::string& host, LimitClass kind)>;

class JobStore {
 public:
  static constexpr int kSchemaVersion = 2;
  static constexpr std::chrono::seconds kLeaseTime{15};
  // How long a call waits for another process's lock before it fails.
  static constexpr std::chrono::milliseconds kBusyTimeout{10'000};

  // Opens (creating the file, its directory and the schema as needed) the
  // database at path. Throws Error(kFailedPrecondition) for a database of a
  // newer schema version than this vmshift knows, and for a directory that
  // another user owns or that others may write to. The directory is made
  // 0700, the database and its -wal/-shm files 0600.
  static JobStore open(const std::string& path,
                       std::chrono::milliseconds busy_timeout = kBusyTimeout);
  // $VMSHIFT_STATE_DIR/jobs.db, else $XDG_STATE_HOME/vmshift/jobs.db,
  // else ~/.local/state/vmshift/jobs.db.
  static std::string default_path();

  JobStore(JobStore&&) noexcept;
  JobStore& operator=(JobStore&&) noexcept;
  ~JobStore();

  // A new job, state kQueued. Error(kFailedPrecondition) naming the other
  // job if the VM (vm_uuid) has one queued (with a live waiter), running
  // or cancelling: one active job per VM.
  std::int64_t create(const NewJob& job);
  Job get(std::int64_t id);               // Error(kNotFound) if none
  std::vector<Job> list(int limit = 50);  // newest first

  // Starts a queued job if its slots allow (see above), giving this process
  // its lease. False if it must keep waiting. Error(kFailedPrecondition) if
  // the job is not queued (e.g. cancelled meanwhile). A job whose VM has
  // another job running, cancelling or queued ahead of it is refused: it
  // ends cancelled and try_start throws Error(kFailedPrecondition) naming
  // the other job (as virsh and Proxmox refuse a second migration of a VM).
  bool try_start(std::int64_t id, const LimitFn& limits);
  // Jobs running (or cancelling) that hold one of these slots, and queued
  // jobs ahead of id: for "waiting for ..." messages.
  std::vector<Job> blocking(std::int64_t id);

  // The owner's calls while it runs. Each renews the lease; renew_lease()
  // does only that. They throw Error(kFailedPrecondition) if this process
  // no longer holds the lease (another process recovered the job).
  void renew_lease(std::int64_t id);
  void set_step(std::int64_t id, std::size_t index, StepState state,
                const std::string& detail = "");
  void set_progress(std::int64_t id, std::int64_t done, std::int64_t total, double rate,
                    std::optional<double> eta_seconds);
  void set_pause(std::int64_t id, std::int64_t pause_ms);
  void set_state_data(std::int64_t id, const std::string& json);
  void set_state(std::int64_t id, JobState state);  // e.g. kCancelling when it starts undoing
  // Ends the job (a terminal state) and releases its lease and slots.
  void finish(std::int64_t id, JobState state, const std::string& message);

  // Puts a failed job back in the queue, to run again from the state it
  // saved (e.g. a copy's journal): this process becomes its waiter. False
  // if the job is not failed; Error(kFailedPrecondition) if its VM has
  // another active job.
  bool reopen(std::int64_t id);

  // From any process. A queued job becomes kCancelled at once (true); a
  // running one gets cancel_requested, which its owner acts on (true); a
  // finished job cannot be cancelled (false).
  bool request_cancel(std::int64_t id);

  // Running or cancelling jobs whose lease is stale: their process is gone
  // (see lease_alive).
  std::vector<Job> stale();
  // Makes this process the lease holder of a stale job; false if another
  // process took it first or it is no longer stale.
  bool take_over(std::int64_t id);

  // The pid of the process waiting to start a queued job.
  std::optional<std::int64_t> waiter(std::int64_t id);
  // Queued jobs whose waiting process died: nobody will start them.
  std::vector<std::int64_t> orphaned();
  // Cancels such a job with message, unless a live process waits for it
  // again meanwhile (false).
  bool cancel_orphan(std::int64_t id, const std::string& message);

  // This process's identity as a lease holder (exposed for tests).
  static Lease own_lease();
  // Whether the lease's process still runs (pid and start time match).
  // The store is on this machine, so that is known for certain: a live
  // owner's lease never goes stale, whatever the clock says or however
  // late its last renewal was; `expires` only shows when it renewed.
  static bool lease_alive(const Lease& lease);

  // The database file.
  std::string path() const;

 private:
  explicit JobStore(sqlite3* db);
  struct Close {
    void operator()(sqlite3* db) const;
  };
  std::unique_ptr<sqlite3, Close> db_;
};

}  // namespace vmshift::core
