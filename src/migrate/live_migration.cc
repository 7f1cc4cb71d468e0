#include "migrate/live_migration.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "base/error.h"
#include "base/format.h"
#include "base/poll_until.h"
#include "hosts/domain.h"
#include "migrate/created.h"
#include "migrate/job_env.h"
#include "migrate/kind.h"

namespace vmshift::migrate {
namespace {

enum Step : std::size_t { kCheck, kPrepare, kMigrate, kVerify, kCleanup };
constexpr auto kPoll = std::chrono::milliseconds(200);
// How long an abort may take to end the migration on the source.
constexpr auto kAbortWait = std::chrono::seconds(120);
// How long recovery waits for a migration still running in libvirtd.
constexpr auto kRecoveryWait = std::chrono::minutes(10);
// How long the destination side of a failed migration may take to go.
constexpr auto kSettle = std::chrono::seconds(30);

using Saved = LiveMigrationState;

std::string list_copies(const std::vector<DiskMove>& copies, bool dest) {
  std::string s;
  for (const auto& m : copies)
    s += fmt::format("{}{} {}", s.empty() ? "" : ", ", m.target, dest ? m.dest : m.source);
  return s;
}

bool active(const std::optional<std::string>& state) {
  return state && (*state == "running" || *state == "paused");
}

// While libvirt tears down the destination side of a failed or cancelled
// migration, the VM shows there as paused: waits (bounded) until it is
// gone, as long as the VM runs on the source. Returns the destination's state.
std::optional<std::string> settled_dest_state(hosts::MigrationHost& src, hosts::MigrationHost& dst,
                                              const std::string& vm) {
  std::optional<std::string> d;
  poll_until(Deadline::after(kSettle), kPoll, [&] {
    d = dst.vm_state(vm);
    return !d || *d != "paused" || !active(src.vm_state(vm));
  });
  return d;
}

// Removes what this job made on the destination, unless the VM runs there.
// Returns problems as sentences.
std::vector<std::string> undo_destination(hosts::MigrationHost& src, hosts::MigrationHost& dst,
                                          const std::string& vm, std::vector<Created>& created) {
  auto paths = [&] {
    std::vector<std::string> v;
    for (const auto& c : created) v.push_back(c.path);
    return fmt::format("{}", fmt::join(v, ", "));
  };
  std::vector<std::string> problems;
  std::optional<std::string> state;
  try {
    state = settled_dest_state(src, dst, vm);
  } catch (const Error& e) {
    problems.push_back(
        fmt::format("cannot check host '{}' for a leftover VM: {}; its files "
                    "were kept: {}",
                    dst.name(), e.what(), paths()));
    return problems;
  }
  if (state && (*state == "running" || *state == "paused")) {
    problems.push_back(fmt::format("VM '{}' is {} on host '{}': nothing was removed there", vm,
                                   *state, dst.name()));
    return problems;
  }
  if (state) {
    // The planner refused a destination with a VM of this name: this
    // definition is the migration's leftover.
    try {
      dst.undefine(vm);
    } catch (const Error& e) {
      problems.push_back(
          fmt::format("a leftover definition of '{}' on host '{}' could not be "
                      "removed: {}",
                      vm, dst.name(), e.what()));
    }
  }
  // Only files this job created, and only while they are still those files.
  remove_all_created(dst.storage(), dst.name(), created, problems);
  return problems;
}

std::string delete_sources(hosts::MigrationHost& src, const std::vector<DiskMove>& copies,
                           bool keep) {
  if (copies.empty()) return "no source files to delete (shared storage)";
  if (keep) return fmt::format("source files kept on host '{}' (--keep-source)", src.name());
  std::vector<std::string> problems, backing;
  for (const auto& m : copies) {
    try {
      src.storage().remove(m.source);
    } catch (const Error& e) {
      problems.push_back(fmt::format("'{}' could not be deleted: {}", m.source, e.what()));
    }
    backing.insert(backing.end(), m.backing.begin(), m.backing.end());
  }
  std::string note = fmt::format("source files deleted on host '{}'", src.name());
  if (!problems.empty()) note += fmt::format(", except: {}", fmt::join(problems, "; "));
  if (!backing.empty())
    note += fmt::format(" (backing files left in place, other VMs may use them: {})",
                        fmt::join(backing, ", "));
  return note;
}

std::string secs(std::chrono::milliseconds ms) {
  return fmt::format("{:.1f} s", static_cast<double>(ms.count()) / 1000.0);
}

}  // namespace

std::vector<std::string> live_migration_steps() {
  return {"check", "prepare", "migrate", "verify", "cleanup"};
}

hosts::MigrationRequest migration_request(const LiveMigrationPlan& plan,
                                          const LiveMigrationOptions& o,
                                          const std::string& dest_xml,
                                          const std::string& persist_xml) {
  hosts::MigrationRequest r;
  r.dest_peer_uri = plan.dest_peer_uri;
  r.migrate_uri = plan.migrate_uri;
  for (const auto& m : plan.copies) r.copy_disks.push_back(m.target);
  r.copy_top_only = o.shallow;
  r.dest_xml = dest_xml;
  r.persist_xml = persist_xml;
  r.bandwidth = o.bandwidth;
  r.compression = o.compress;
  r.parallel = o.parallel;
  if (o.compress == "zstd" && r.parallel == 0) r.parallel = 2;  // zstd needs multifd
  r.auto_converge = o.auto_converge;
  r.postcopy = o.postcopy || o.timeout_action == "postcopy";
  r.tls = o.tls;
  r.shared_storage_vouched = !plan.shared.empty();
  r.max_downtime = o.max_downtime;
  return r;
}

Result run_live_migration(hosts::MigrationHost& src, hosts::MigrationHost& dst,
                          const LiveMigrationPlan& plan, const LiveMigrationOptions& o,
                          JobContext& job) {
  Saved saved;
  saved.vm = plan.vm;
  saved.keep_source = o.keep_source;
  saved.copies = plan.copies;
  job.save_state(codec::dump(saved));
  const std::string& vm = plan.vm;
  std::string route = fmt::format("host '{}' to host '{}'", src.name(), dst.name());
  job.step(
      kCheck, StepState::kDone,
      plan.copies_storage()
          ? fmt::format("{} disk{} to copy, {} shared", plan.copies.size(),
                        plan.copies.size() == 1 ? "" : "s", plan.shared.size())
          : fmt::format("shared storage: only memory moves ({})", human_bytes(plan.memory_bytes)));

  // A failure before the switch-over: the VM stays on the source.
  auto fail_before_switch = [&](Step step, const std::string& why, Outcome outcome) {
    job.step(step, outcome == Outcome::kCancelled ? StepState::kUndone : StepState::kFailed, why);
    bool made = !saved.created.empty();
    std::vector<std::string> problems = undo_destination(src, dst, vm, saved.created);
    saved.phase = "undone";
    job.save_state(codec::dump(saved));
    std::string where;
    try {
      where = src.vm_state(vm).value_or("not defined");
    } catch (const Error& e) {
      where = fmt::format("unknown ({})", e.what());
    }
    std::string msg = fmt::format(
        "{}. The VM stays on host '{}' ({}), unchanged{}.", why, src.name(), where,
        !made || !problems.empty()
            ? ""
            : fmt::format("; the destination images on host '{}' were removed", dst.name()));
    return Result{outcome, with_problems(msg, problems)};
  };

  // ---- prepare: destination images, and the definition with new paths.
  job.step(kPrepare, StepState::kRunning);
  std::string dest_xml, persist_xml;
  try {
    for (const auto& m : plan.copies) {
      if (job.cancel_requested())
        return fail_before_switch(kPrepare, "Cancelled by request before the migration",
                                  Outcome::kCancelled);
      // --force replaces only the file the plan found (no defined VM uses
      // it, no source of the move), and only while it is still that file.
      clear_destination(dst.storage(), m, o.force);
      hosts::NewImage image{.path = m.dest, .format = m.format, .capacity = m.capacity};
      if (o.shallow && !m.backing.empty()) {
        image.backing = m.backing.front();
        image.backing_format = m.backing_format;
      }
      dst.storage().create_image(image);  // throws if a file is there: not ours then
      // Recorded after the create, with the file's identity: the undo
      // deletes it only if it is still this file.
      saved.created.push_back(record_created(dst.storage(), dst.name(), m.dest));
      job.save_state(codec::dump(saved));
    }
    std::vector<std::pair<std::string, std::string>> moved;
    for (const auto& m : plan.copies)
      if (m.dest != m.source) moved.emplace_back(m.target, m.dest);
    if (!moved.empty()) {
      dest_xml = hosts::rewrite_disk_paths(src.vm_xml(vm, false), moved);
      if (src.vm_persistent(vm))
        persist_xml = hosts::rewrite_disk_paths(src.vm_xml(vm, true), moved);
    }
  } catch (const Error& e) {
    return fail_before_switch(kPrepare,
                              fmt::format("Preparing host '{}' failed: {}", dst.name(), e.what()),
                              Outcome::kFailed);
  }
  job.checkpoint("prepared");
  if (job.cancel_requested())
    return fail_before_switch(kPrepare, "Cancelled by request before the migration",
                              Outcome::kCancelled);
  job.step(kPrepare, StepState::kDone,
           plan.copies.empty() ? "nothing to create"
                               : fmt::format("created on host '{}': {}", dst.name(),
                                             list_copies(plan.copies, true)));

  // ---- migrate
  job.step(kMigrate, StepState::kRunning);
  saved.phase = "migrate";
  job.save_state(codec::dump(saved));
  std::unique_ptr<hosts::LiveMigration> mig;
  try {
    mig = src.start_migration(vm, migration_request(plan, o, dest_xml, persist_xml));
  } catch (const Error& e) {
    return fail_before_switch(kMigrate, fmt::format("The migration could not start: {}", e.what()),
                              Outcome::kFailed);
  }
  auto start = std::chrono::steady_clock::now();
  std::optional<Deadline> overall;
  if (o.timeout_per_gib.count() > 0) {
    double gib = static_cast<double>(plan.memory_bytes +
                                     [&] {
                                       std::uint64_t b = 0;
                                       for (const auto& m : plan.copies) b += m.need;
                                       return b;
                                     }()) /
                 static_cast<double>(1ull << 30);
    overall = Deadline::after(std::chrono::milliseconds(static_cast<std::int64_t>(
        std::max(1.0, gib) * static_cast<double>(o.timeout_per_gib.count()) * 1000)));
  }
  std::uint64_t best_remaining = UINT64_MAX;
  auto best_time = start;
  bool cancelled = false, timed_out_action_taken = false;
  std::string timeout_note;
  hosts::MigrationStats last;
  std::optional<std::string> outcome;
  for (;;) {
    outcome = mig->wait(Deadline::after(kPoll));
    if (outcome) break;
    if (!cancelled && job.cancel_requested()) {
      if (last.postcopy) {
        job.note(
            "cancel ignored: the migration is in post-copy; the VM already runs on the "
            "destination and must finish there");
      } else {
        cancelled = true;
        mig->abort();
      }
    }
    hosts::MigrationStats s = mig->stats();
    if (!s.active || s.memory_total + s.disk_total == 0) continue;  // still setting up
    last = s;
    std::uint64_t total = s.memory_total + s.disk_total;
    std::uint64_t done = s.memory_processed + s.disk_processed;
    job.progress(s.phase(), done, total);
    job.detail(
        Json::object()
            .set("phase", Json::string(s.phase()))
            .set("memory_total", Json::integer(static_cast<std::int64_t>(s.memory_total)))
            .set("memory_processed", Json::integer(static_cast<std::int64_t>(s.memory_processed)))
            .set("memory_remaining", Json::integer(static_cast<std::int64_t>(s.memory_remaining)))
            .set("memory_bps", Json::integer(static_cast<std::int64_t>(s.memory_bps)))
            .set("disk_total", Json::integer(static_cast<std::int64_t>(s.disk_total)))
            .set("disk_processed", Json::integer(static_cast<std::int64_t>(s.disk_processed)))
            .set("disk_remaining", Json::integer(static_cast<std::int64_t>(s.disk_remaining)))
            .set("dirty_rate", Json::integer(static_cast<std::int64_t>(s.dirty_bytes_per_s)))
            .set("iteration", Json::integer(static_cast<std::int64_t>(s.iteration)))
            .set("throttle", Json::integer(static_cast<std::int64_t>(s.throttle_percent))));
    if (cancelled || timed_out_action_taken) continue;
    // Converging means what is left keeps reaching new lows.
    std::uint64_t remaining = s.memory_remaining + s.disk_remaining;
    auto now = std::chrono::steady_clock::now();
    if (remaining < best_remaining) {
      best_remaining = remaining;
      best_time = now;
    }
    bool stalled = now - best_time > o.progress_timeout;
    bool too_long = overall && overall->expired();
    if (!stalled && !too_long) continue;
    std::string why = stalled ? fmt::format("no progress for {} s (--progress-timeout; {} left)",
                                            o.progress_timeout.count(), human_bytes(remaining))
                              : fmt::format(
                                    "the time limit of {} s per GiB passed "
                                    "(--timeout-per-gib)",
                                    o.timeout_per_gib.count());
    if (o.timeout_action == "postcopy" && !s.postcopy && s.phase() == "memory") {
      try {
        mig->switch_to_postcopy();
        timeout_note = why + ": switched to post-copy";
        job.note(timeout_note);
        timed_out_action_taken = true;
        continue;
      } catch (const Error& e) {
        job.note(fmt::format("{}; the switch to post-copy failed: {}; aborting", why, e.what()));
      }
    } else if (o.timeout_action == "suspend") {
      try {
        mig->suspend_source();
        timeout_note = why + ": the guest was paused so that the migration completes";
        job.note(timeout_note);
        timed_out_action_taken = true;
        continue;
      } catch (const Error& e) {
        job.note(fmt::format("{}; pausing the guest failed: {}; aborting", why, e.what()));
      }
    }
    timeout_note = why;
    cancelled = true;
    mig->abort();
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);

  if (!outcome->empty()) {
    // Failed, cancelled or aborted by a timeout. Unless post-copy had
    // started, libvirt resumed the VM on the source.
    if (last.postcopy) {
      job.step(kMigrate, StepState::kFailed, *outcome);
      saved.phase = "switched";
      job.save_state(codec::dump(saved));
      return Result{Outcome::kFailed,
                    fmt::format("The migration failed in post-copy: {}. The VM had already "
                                "switched to host '{}' and may be paused there; libvirt can "
                                "recover it (virsh migrate --postcopy --postcopy-resume). No "
                                "file was deleted.",
                                *outcome, dst.name())};
    }
    if (!timeout_note.empty())
      return fail_before_switch(kMigrate, fmt::format("Aborted: {}", timeout_note),
                                Outcome::kFailed);
    if (cancelled)
      return fail_before_switch(kMigrate, "Cancelled by request during the migration",
                                Outcome::kCancelled);
    return fail_before_switch(kMigrate, fmt::format("The migration failed: {}", *outcome),
                              Outcome::kFailed);
  }
  std::optional<hosts::CompletedMigration> done = dst.completed_migration(vm);
  saved.phase = "switched";
  if (done) saved.memory_bps = done->memory_bps;
  job.save_state(codec::dump(saved));
  // -1: not reported (a plain integer: GCC misreads an optional here).
  std::int64_t downtime = done && done->downtime_ms ? *done->downtime_ms : -1;
  std::string pause_text = downtime >= 0 ? fmt::format("{} ms", downtime) : "not reported";
  if (downtime >= 0) job.pause(std::chrono::milliseconds(downtime));
  std::uint64_t passes = done && done->iteration > 0 ? done->iteration : last.iteration;
  if (done && done->data_processed > 0)
    job.progress("done", done->data_processed, done->data_processed);
  job.step(kMigrate, StepState::kDone,
           fmt::format(
               "{} in {}{}{}; pause {}", route, secs(took),
               passes > 0 ? fmt::format(", {} memory pass{}", passes, passes == 1 ? "" : "es") : "",
               done && done->data_processed > 0
                   ? fmt::format(", {} of memory sent", human_bytes(done->data_processed))
                   : "",
               pause_text));
  job.checkpoint("switched");

  // ---- verify: the VM runs on the destination, on the expected files.
  job.step(kVerify, StepState::kRunning);
  std::vector<std::string> wrong;
  std::optional<std::string> state = dst.vm_state(vm);
  if (!state || (*state != "running" && *state != "paused"))
    wrong.push_back(
        state ? fmt::format("the VM is {} on host '{}': it stopped right after the switch-over "
                            "(its console and host '{}''s QEMU log say why; under TCG, QEMU can "
                            "lose memory writes during a migration)",
                            *state, dst.name(), dst.name())
              : fmt::format("the VM is not defined on host '{}'", dst.name()));
  if (wrong.empty()) {
    std::map<std::string, std::string> live = dst.vm_disks(vm, false);
    for (const auto& m : plan.copies)
      if (live[m.target] != m.dest)
        wrong.push_back(
            fmt::format("disk {} uses '{}' instead of '{}'", m.target, live[m.target], m.dest));
    for (const auto& [target, path] : plan.shared)
      if (live[target] != path)
        wrong.push_back(
            fmt::format("disk {} uses '{}' instead of '{}'", target, live[target], path));
    if (!dst.vm_persistent(vm))
      wrong.push_back(fmt::format("the VM is not defined persistently on host '{}'", dst.name()));
  }
  if (!wrong.empty()) {
    job.step(kVerify, StepState::kFailed, fmt::format("{}", fmt::join(wrong, "; ")));
    return Result{Outcome::kFailed,
                  fmt::format("The migration reported success, but {}. No source file was "
                              "deleted; check the VM on both hosts.",
                              fmt::join(wrong, "; "))};
  }
  std::string source_left;
  if (std::optional<std::string> s = src.vm_state(vm))
    source_left =
        fmt::format(" (a definition in state '{}' is still on host '{}')", *s, src.name());
  job.step(kVerify, StepState::kDone,
           fmt::format("{} on host '{}'{}", *state, dst.name(), source_left));

  // ---- cleanup
  std::string cleanup = delete_sources(src, plan.copies, o.keep_source);
  job.step(kCleanup, o.keep_source || plan.copies.empty() ? StepState::kSkipped : StepState::kDone,
           cleanup);
  saved.phase = "done";
  job.save_state(codec::dump(saved));
  std::string summary = fmt::format("{} of {} from {} in {}, pause {}",
                                    plan.copies_storage() ? "live VSM" : "live migration", vm,
                                    route, secs(took), pause_text);
  if (!timeout_note.empty()) summary += fmt::format(" ({})", timeout_note);
  return Result{Outcome::kCompleted, fmt::format("{}; {}", summary, cleanup)};
}

Result recover_live_migration(hosts::MigrationHost& src, hosts::MigrationHost& dst,
                              const std::string& state_text, JobContext& job) {
  Saved saved = codec::parse<Saved>(state_text, "saved state");
  const std::string& vm = saved.vm;
  if (saved.phase == "done")
    return Result{Outcome::kCompleted, "the job had finished its work before its process died"};
  // The migration goes on in the source's libvirtd without its vmshift
  // process. Before the switch-over it is cancelled: the VM stays on the
  // intact source, as when a job is cancelled. One that cannot be cancelled
  // any more (post-copy, or the switch-over under way) is let finish.
  if (src.vm_job_active(vm)) {
    bool aborted = src.abort_job(vm);
    Deadline limit = Deadline::after(aborted ? kAbortWait : kRecoveryWait);
    poll_until(limit, kPoll, [&] { return !src.vm_job_active(vm); });
    if (src.vm_job_active(vm))
      throw Error(ErrorCode::kTimeout,
                  fmt::format("a migration of '{}' still runs on host '{}'", vm, src.name()));
  }
  std::optional<std::string> on_dst = settled_dest_state(src, dst, vm);
  std::optional<std::string> on_src = src.vm_state(vm);
  // Paused on the destination is no proof: libvirt shows the incoming VM
  // paused until the migration completes. It counts only as running, or
  // paused with the destination's completed-job statistics.
  bool completed = false;
  if (on_dst && *on_dst == "paused") {
    try {
      completed = dst.completed_migration(vm).has_value();
    } catch (const Error&) {
      completed = false;
    }
  }
  bool at_dst = on_dst && (*on_dst == "running" || (*on_dst == "paused" && completed));
  bool at_src = active(on_src);
  if (at_dst && !at_src) {
    job.step(kMigrate, StepState::kDone, "finished while its vmshift process was gone");
    std::string cleanup = delete_sources(src, saved.copies, saved.keep_source);
    job.step(kCleanup,
             saved.keep_source || saved.copies.empty() ? StepState::kSkipped : StepState::kDone,
             cleanup);
    return Result{Outcome::kCompleted,
                  fmt::format("Completed by recovery after its vmshift process died: the VM runs "
                              "on host '{}'; {}",
                              dst.name(), cleanup)};
  }
  if (at_src && !at_dst) {
    bool made = !saved.created.empty();
    std::vector<std::string> problems = undo_destination(src, dst, vm, saved.created);
    job.step(kMigrate, StepState::kUndone, "rolled back by recovery");
    return Result{Outcome::kRolledBack,
                  with_problems(fmt::format("The vmshift process running this job died before "
                                            "the switch-over. The VM runs on host '{}', "
                                            "unchanged{}.",
                                            src.name(),
                                            !made || !problems.empty()
                                                ? ""
                                                : fmt::format("; the destination images on host "
                                                              "'{}' were removed",
                                                              dst.name())),
                                problems)};
  }
  if (on_dst && *on_dst == "paused" && !at_src)
    return Result{Outcome::kFailed,
                  fmt::format("The vmshift process running this job died. The VM is paused on "
                              "host '{}', but that host shows no completed migration, and it is "
                              "{} on host '{}': nothing was deleted (the source files stay: {}). "
                              "Check the VM on host '{}' (virsh domjobinfo --completed) before "
                              "resuming it.",
                              dst.name(), on_src.value_or("not defined"), src.name(),
                              list_copies(saved.copies, false), dst.name())};
  return Result{Outcome::kFailed,
                fmt::format("The vmshift process running this job died. The VM is {} on host '{}' "
                            "and {} on host '{}'; nothing was deleted. Check both hosts.",
                            on_src.value_or("not defined"), src.name(),
                            on_dst.value_or("not defined"), dst.name())};
}

void write_prediction(const LiveMigrationPlan& p, Json& o) {
  o.set("predicted_total_ms", codec::encode(p.prediction.total))
      .set("predicted_pause_ms", codec::encode(p.prediction.pause));
}

void read_prediction(const Json& o, LiveMigrationPlan& p, const std::string& path) {
  codec::decode_key(o, "predicted_total_ms", p.prediction.total, path);
  codec::decode_key(o, "predicted_pause_ms", p.prediction.pause, path);
}

Json migration_params(const LiveMigrationPlan& plan, const LiveMigrationOptions& options) {
  return Json::object().set("plan", codec::encode(plan)).set("options", codec::encode(options));
}

MigrationParams migration_params_from(const std::string& text) {
  Json params = Json::parse(text);
  return {codec::decode<LiveMigrationOptions>(params.get("options"), "options"),
          codec::decode<LiveMigrationPlan>(params.get("plan"), "plan")};
}

std::vector<std::string> plan_files(const std::string& params, bool moved) {
  auto plan = codec::decode<LiveMigrationPlan>(Json::parse(params).get("plan"), "plan");
  std::vector<std::string> files;
  for (const auto& c : plan.copies)
    files.push_back(fmt::format("{} '{}'", c.target, moved ? c.dest : c.source));
  for (const auto& [target, path] : plan.shared)
    files.push_back(fmt::format("{} '{}' (shared)", target, path));
  return files;
}

namespace {

// live and live-vsm: the same run; a live VSM also copies the disks, and
// counts as one live and one storage migration on both hosts.
JobKind live_migration_kind(Kind id, std::vector<SlotNeed> slots) {
  return JobKind{
      .id = id,
      .steps = live_migration_steps(),
      .slots = std::move(slots),
      .run = [](const JobRecord& job, JobEnv& env, JobContext& ctx) -> Result {
        MigrationParams p = migration_params_from(job.params);
        if (auto refused = check_again(env, job, ctx, p.options, p.plan)) return *refused;
        std::unique_ptr<OpenSite> src = env.open_site(job.source_host);
        std::unique_ptr<OpenSite> dst = env.open_site(job.dest_host);
        return run_live_migration(src->site().host, dst->site().host, p.plan, p.options, ctx);
      },
      .recover = [](const JobRecord& job, JobEnv& env, JobContext& ctx) -> Result {
        std::unique_ptr<OpenSite> src = env.open_site(job.source_host);
        std::unique_ptr<OpenSite> dst = env.open_site(job.dest_host);
        return recover_live_migration(src->site().host, dst->site().host, job.state, ctx);
      },
      .resume = std::nullopt,
      .files = [](const JobRecord& job, bool moved) { return plan_files(job.params, moved); },
      // QEMU's own transfer rate, when the job kept it.
      .memory_rate = [](const std::string& state) -> std::optional<double> {
        try {
          // Only this key: states of older versions lack others.
          if (auto bps = Json::parse(state).find_int("memory_bps"); bps && *bps > 0)
            return static_cast<double>(*bps);
        } catch (const Error&) {
        }
        return std::nullopt;
      },
  };
}

}  // namespace

const JobKind& live_kind() {
  static const JobKind kind = live_migration_kind(
      Kind::kLive, {{Side::kSource, Limit::kLive}, {Side::kDest, Limit::kLive}});
  return kind;
}

const JobKind& live_vsm_kind() {
  static const JobKind kind = live_migration_kind(Kind::kLiveVsm, {{Side::kSource, Limit::kLive},
                                                                   {Side::kDest, Limit::kLive},
                                                                   {Side::kSource, Limit::kStorage},
                                                                   {Side::kDest, Limit::kStorage}});
  return kind;
}

}  // namespace vmshift::migrate
