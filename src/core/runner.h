// Running jobs: waiting for a slot, holding the lease, dispatching to the
// job's kind (migrate/kind.h), finishing, and recovering jobs whose
// process died.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/codec.h"
#include "base/deadline.h"
#include "core/job_context.h"
#include "core/job_create.h"
#include "core/job_hosts.h"
#include "core/job_lease.h"
#include "core/job_store.h"
#include "hosts/inventory.h"
#include "migrate/job_env.h"
#include "migrate/kind.h"

namespace vmshift::core {

struct JobOutcome {
  JobState state = JobState::kFailed;
  std::string message;
};

// The JobKind of a job's type, or nullptr for a type it does not know.
using KindLookup = std::function<const migrate::JobKind*(std::string_view type)>;

// What the runner runs jobs with: their kinds, what the kinds act on, and
// the per-host limits.
struct Runtime {
  migrate::JobEnv& env;
  LimitFn limits;
  KindLookup kinds = migrate::find_job_kind;
};

// Whether a failed job of this type can continue (`vmshift jobs resume`).
bool resumable(const std::string& type);

// Runs a queued job in this process until it ends. Waits for a slot until
// queue_deadline (then the job is cancelled: nothing was changed). A set
// `interrupted` (Ctrl-C) counts as a cancel request. A job of a type that
// is no kind fails, naming the job.
JobOutcome run_job(const std::string& store_path, std::int64_t id, const Runtime& runtime,
                   Observer& observer, Deadline queue_deadline,
                   const std::atomic<bool>* interrupted = nullptr);
// The same on the inventory's hosts (InventoryHosts, limits_from).
JobOutcome run_job(const std::string& store_path, std::int64_t id,
                   const hosts::Inventory& inventory, Observer& observer, Deadline queue_deadline,
                   const std::atomic<bool>* interrupted = nullptr);

// Finishes or undoes every job whose vmshift process died. One line per job
// for the user.
std::vector<std::string> recover_stale_jobs(JobStore& store, const Runtime& runtime);
std::vector<std::string> recover_stale_jobs(JobStore& store, const hosts::Inventory& inventory);

}  // namespace vmshift::core
