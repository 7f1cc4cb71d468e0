#include "core/runner.h"

#include <fmt/format.h>

#include <optional>

#include "base/error.h"
#include "base/poll_until.h"

namespace vmshift::core {
namespace {

constexpr auto kFinishDeadline = std::chrono::seconds(30);

JobState job_state(migrate::Outcome o) {
  switch (o) {
    case migrate::Outcome::kCompleted:
      return JobState::kCompleted;
    case migrate::Outcome::kFailed:
      return JobState::kFailed;
    case migrate::Outcome::kCancelled:
      return JobState::kCancelled;
    case migrate::Outcome::kRolledBack:
      return JobState::kRolledBack;
  }
  return JobState::kFailed;
}

// The job's kind; throws Error(kInvalidArgument) naming the job for a type
// that is no kind.
const migrate::JobKind& kind_of(const Runtime& rt, const Job& job) {
  if (const migrate::JobKind* k = rt.kinds(job.type)) return *k;
  try {
    migrate::parse_kind(job.type);  // for the names of the known types
  } catch (const Error& e) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("job {}: {}", job.id, e.what()));
  }
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("job {}: no kind runs jobs of type '{}'", job.id, job.type));
}

migrate::JobRecord record_of(const Job& job) {
  return {job.id, job.vm, job.source_host, job.dest_host, job.params, job.state_data};
}

// Where the VM's disks are (its kind knows, from the job's params or its
// last recovery data), for messages that cannot count on the job store.
std::string files_note(const Job& job, const migrate::JobKind& kind, const StoreContext& ctx,
                       bool moved) {
  std::vector<std::string> files;
  try {
    migrate::JobRecord r = record_of(job);
    r.state = ctx.last_state().value_or("");
    if (kind.files) files = kind.files(r, moved);
  } catch (const Error&) {
  }
  if (files.empty()) return fmt::format("`vmshift jobs show {}` lists its files.", job.id);
  return fmt::format("The VM's data is in {} on host '{}'.", fmt::join(files, ", "),
                     moved ? job.dest_host : job.source_host);
}

std::string describe_blockers(const std::vector<Job>& blockers) {
  std::string s;
  for (const auto& b : blockers)
    s += fmt::format("{}job {} ({} of {}, {})", s.empty() ? "" : ", ", b.id, b.type, b.vm,
                     to_string(b.state));
  return s;
}

// Waits for a slot (renewing the queued job's lease meanwhile); the job
// if it ended (was cancelled) while it waited, or false if it never got one.
bool wait_for_slot(JobStore& store, std::int64_t id, const LimitFn& limits, Observer& obs,
                   Deadline deadline, const std::atomic<bool>* interrupted,
                   std::optional<Job>& ended) {
  std::string last_why;
  return poll_until(deadline, std::chrono::milliseconds(500), [&] {
    for (;;) {
      Job job = store.get(id);
      if (is_terminal(job.state)) {
        ended = job;
        return true;
      }
      if (interrupted == nullptr || !interrupted->load()) break;
      store.request_cancel(id);
    }
    if (store.try_start(id, limits)) return true;
    std::string why = fmt::format("queued: waiting for a free slot, behind {}",
                                  describe_blockers(store.blocking(id)));
    if (why != last_why) obs.waiting(why);
    last_why = why;
    return false;
  });
}

}  // namespace

bool resumable(const std::string& type) {
  const migrate::JobKind* k = migrate::find_job_kind(type);
  return k != nullptr && k->resumable();
}

JobOutcome run_job(const std::string& store_path, std::int64_t id, const hosts::Inventory& inv,
                   Observer& obs, Deadline queue_deadline, const std::atomic<bool>* interrupted) {
  InventoryHosts env(inv);
  return run_job(store_path, id, Runtime{env, limits_from(inv)}, obs, queue_deadline, interrupted);
}

JobOutcome run_job(const std::string& store_path, std::int64_t id, const Runtime& rt, Observer& obs,
                   Deadline queue_deadline, const std::atomic<bool>* interrupted) {
  JobStore store = JobStore::open(store_path);
  std::optional<Job> ended;
  if (!wait_for_slot(store, id, rt.limits, obs, queue_deadline, interrupted, ended)) {
    store.request_cancel(id);
    std::string msg = "waited too long for a free slot (--queue-timeout); nothing was changed";
    return {JobState::kCancelled, msg};
  }
  if (ended) return {ended->state, ended->error.empty() ? ended->result : ended->error};

  Job job = store.get(id);
  obs.started(job);
  Heartbeat heartbeat(store_path, id);
  const migrate::JobKind* kind = nullptr;
  try {
    kind = &kind_of(rt, job);
  } catch (const Error& e) {
    store.finish(id, JobState::kFailed, e.what());
    return {JobState::kFailed, e.what()};
  }
  StoreContext ctx(store, id, kind->steps, obs, interrupted);
  ctx.watch(heartbeat);
  migrate::Result result;
  try {
    result = kind->run(record_of(job), rt.env, ctx);
    ctx.flush();
  } catch (const std::exception& e) {
    // What recovery does for a dead process puts the VM back on its feet
    // here too (e.g. restores a VM saved by a QSM on its source).
    std::string what = e.what();
    try {
      // From memory: the store may be what failed.
      migrate::JobRecord now = record_of(job);
      if (ctx.last_state()) now.state = *ctx.last_state();
      if (kind->resumable() || !kind->recover)
        throw Error(ErrorCode::kFailedPrecondition,
                    fmt::format("nothing to undo; `vmshift jobs resume {}` continues", id));
      migrate::Result r = kind->recover(now, rt.env, ctx);
      result = {r.outcome == migrate::Outcome::kCompleted ? migrate::Outcome::kCompleted
                                                          : migrate::Outcome::kFailed,
                fmt::format("Unexpected error: {}. Recovery: {}", what, r.message)};
    } catch (const std::exception& again) {
      result = {migrate::Outcome::kFailed,
                fmt::format("Unexpected error: {}; recovery failed too: {}. The VM and its files "
                            "may be mid-way; `vmshift jobs show {}` lists the steps that ran.",
                            what, again.what(), id)};
    }
  }
  JobState state = job_state(result.outcome);
  std::string message = result.message;
  if (ctx.undone_for_store()) {
    state = JobState::kFailed;
    message = fmt::format(
        "The job store {} could not be written ({}), so the job undid itself from memory, as if "
        "cancelled: {} {}",
        store_path, ctx.first_store_problem(), message, files_note(job, *kind, ctx, false));
  }
  if (!ctx.finish(state, message, Deadline::after(kFinishDeadline))) {
    // Nobody else can learn how the job ended: say it here (stderr is the
    // job log of a job that runs in the background).
    message = fmt::format(
        "{} The job store {} still cannot be written ({}): it may still show job {} as running. "
        "{}",
        message, store_path, ctx.store_problem(), id,
        files_note(job, *kind, ctx, state == JobState::kCompleted));
    fmt::print(stderr, "vmshift: job {} ended {}: {}\n", id, to_string(state), message);
  }
  return {state, message};
}

namespace {

// Queued jobs whose waiting process died: nobody would ever start them.
void cancel_orphans(JobStore& store, std::vector<std::string>& lines) {
  const std::string msg =
      "the vmshift process that waited to start it died while it was queued; nothing was changed";
  for (std::int64_t id : store.orphaned()) {
    if (!store.cancel_orphan(id, msg)) continue;  // a live process waits for it again
    Job job = store.get(id);
    lines.push_back(fmt::format("job {} ({} of {}) cancelled: {}", id, job.type, job.vm, msg));
  }
}

// Recovers one stale job whose lease this process holds; its line.
std::string recover_stale(JobStore& store, const Job& job, const Runtime& rt) {
  std::string who = fmt::format("job {} ({} of {})", job.id, job.type, job.vm);
  auto finish = [&](JobState state, const std::string& msg) {
    store.finish(job.id, state, msg);
    return fmt::format("{}: {}", who, msg);
  };
  auto cannot = [&](const Error& e) {
    // Not finished: the next vmshift command tries again.
    return fmt::format(
        "{}: its vmshift process died and recovery cannot proceed now: {}; it will be tried "
        "again",
        who, e.what());
  };
  if (job.state == JobState::kQueued)
    return finish(JobState::kCancelled,
                  "its vmshift process died while the job waited for a slot; nothing was changed");
  const migrate::JobKind* kind = nullptr;
  try {
    kind = &kind_of(rt, job);
  } catch (const Error& e) {
    return cannot(e);
  }
  if (kind->resumable())  // nothing to undo: the copy's journal lets it resume
    return finish(
        JobState::kFailed,
        fmt::format("its vmshift process died after {} were copied; the source is unchanged; "
                    "`vmshift jobs resume {}` continues the {}",
                    kind->resume->done_so_far(job.state_data), job.id, kind->resume->continues));
  if (job.state_data.empty() || job.state_data == "{}")
    return finish(JobState::kRolledBack,
                  "its vmshift process died before it changed anything; nothing was changed");
  try {
    if (!kind->recover)
      throw Error(ErrorCode::kFailedPrecondition,
                  fmt::format("a {} job has no recovery", kind->name()));
    Observer quiet;
    StoreContext ctx(store, job.id, kind->steps, quiet, nullptr);
    ctx.never_undo_for_store();
    migrate::Result r = kind->recover(record_of(job), rt.env, ctx);
    if (!ctx.finish(job_state(r.outcome), r.message, Deadline::after(kFinishDeadline)))
      r.message += fmt::format(" (the job store could not record it: {})", ctx.store_problem());
    return fmt::format("{} recovered, {}: {}", who, to_string(job_state(r.outcome)), r.message);
  } catch (const Error& e) {
    return cannot(e);
  }
}

}  // namespace

std::vector<std::string> recover_stale_jobs(JobStore& store, const hosts::Inventory& inv) {
  InventoryHosts env(inv);
  return recover_stale_jobs(store, Runtime{env, limits_from(inv)});
}

std::vector<std::string> recover_stale_jobs(JobStore& store, const Runtime& rt) {
  std::vector<std::string> lines;
  for (const Job& job : store.stale()) {
    if (!store.take_over(job.id)) continue;
    // This process holds the lease now, while the recovery runs.
    Heartbeat heartbeat(store.path(), job.id);
    lines.push_back(recover_stale(store, job, rt));
  }
  cancel_orphans(store, lines);
  return lines;
}

}  // namespace vmshift::core
