// What the kinds need from the layers above to run and recover a job:
// hosts, guests and files by inventory name, and the checks made again
// as a queued job starts. migrate/ declares it; core/ implements it on
// the inventory (core/job_hosts); tests implement it on fakes.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "guest/guest.h"
#include "migrate/context.h"
#include "migrate/copy_files.h"
#include "migrate/kind.h"
#include "migrate/live_migration.h"
#include "migrate/live_storage.h"

namespace vmshift::migrate {

// A host opened for a job, and how to read and write its files; closed
// when destroyed.
class OpenSite {
 public:
  virtual ~OpenSite() = default;
  virtual Site& site() = 0;
};

// A migration's checks made again: the fresh plan, or why it is refused
// now (the failed checks, "; "-joined).
struct Recheck {
  std::optional<LiveMigrationPlan> plan;
  std::string refused;
};

class JobEnv {
 public:
  virtual ~JobEnv() = default;
  // An inventory host. Throws Error when it cannot be reached.
  virtual std::unique_ptr<OpenSite> open_site(const std::string& host) = 0;
  virtual std::unique_ptr<guest::Guest> open_guest(const GuestSpec& spec) = 0;
  // The files the defined VMs of every host that sees `path` of `host`
  // use (path -> who). Throws Error naming a host it cannot ask.
  virtual std::map<std::string, std::string> files_in_use(const std::string& host,
                                                          const std::string& path) = 0;
  // move-storage's checks again (things may have changed while the job
  // waited): the plan, or Error saying why it is refused.
  virtual LiveStoragePlan plan_storage_move(guest::Guest& guest, const GuestSpec& spec,
                                            const LiveStorageOptions& options) = 0;
  // A migration's checks again, without measuring the guest.
  virtual Recheck check_migration(const std::string& vm, const std::string& source_host,
                                  const LiveMigrationOptions& options) = 0;
};

// Makes a migration's checks again as its job starts: nullopt and the
// fresh plan in `plan` (keeping the prediction made when the job was
// created: that one measured the guest), or the refusal (step 0 failed).
std::optional<Result> check_again(JobEnv& env, const JobRecord& job, JobContext& ctx,
                                  const LiveMigrationOptions& options, LiveMigrationPlan& plan);

// The kinds that move a VM between two hosts' copy sites (qsm, quick,
// network): the checks run again as the job starts (things may have
// changed while it waited), unless it resumes from its saved state (its
// half-made copies would fail them); then `run` gets both hosts' sites.
using RunOnSites =
    std::function<Result(Site& source, Site& dest, const MigrationParams& params, JobContext& ctx)>;
Result run_on_sites(const JobRecord& job, JobEnv& env, JobContext& ctx, const RunOnSites& run);

// Their recovery: both hosts' sites and the saved state.
using RecoverOnSites = Result (*)(Site& source, Site& dest, const std::string& saved_state,
                                  JobContext& ctx);
Result recover_on_sites(const JobRecord& job, JobEnv& env, JobContext& ctx, RecoverOnSites recover);

}  // namespace vmshift::migrate
