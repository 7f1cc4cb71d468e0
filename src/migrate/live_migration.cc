#include "migrate/live_migration.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "base/error.h"
#include "base/format.h"
#include "base/poll_until.h"
#include "hosts/domain.h"
#include "migrate/created.h"

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

struct Saved {
  std::string phase = "prepare";  // prepare, migrate, switched, done, undone
  std::string vm;
  bool keep_source = false;
  std::vector<DiskMove> copies;
  std::vector<Created> created;  // destination images this job created
  std::uint64_t memory_bps = 0;  // QEMU's memory transfer rate, once done

  std::string dump() const {
    Json disks = Json::array();
    for (const auto& m : copies) disks.push(to_json(m));
    return Json::object()
        .set("phase", Json::string(phase))
        .set("vm", Json::string(vm))
        .set("keep_source", Json::boolean(keep_source))
        .set("copies", disks)
        .set("created", to_json(created))
        .set("memory_bps", Json::integer(static_cast<std::int64_t>(memory_bps)))
        .dump();
  }
  static Saved parse(const std::string& text) {
    Json j = Json::parse(text);
    Saved s;
    s.phase = j.get_string("phase");
    s.vm = j.get_string("vm");
    s.keep_source = j.get_bool("keep_source");
    for (const Json& d : j.get("copies").items()) s.copies.push_back(disk_move_from_json(d));
    s.created = created_list_from_json(j.find("created"));
    return s;
  }
};

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
  job.save_state(saved.dump());
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
    job.save_state(saved.dump());
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
      job.save_state(saved.dump());
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
  job.save_state(saved.dump());
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
      job.save_state(saved.dump());
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
  job.save_state(saved.dump());
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
  job.save_state(saved.dump());
  std::string summary = fmt::format("{} of {} from {} in {}, pause {}",
                                    plan.copies_storage() ? "live VSM" : "live migration", vm,
                                    route, secs(took), pause_text);
  if (!timeout_note.empty()) summary += fmt::format(" ({})", timeout_note);
  return Result{Outcome::kCompleted, fmt::format("{}; {}", summary, cleanup)};
}

Result recover_live_migration(hosts::MigrationHost& src, hosts::MigrationHost& dst,
                              const std::string& state_text, JobContext& job) {
  Saved saved = Saved::parse(state_text);
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

Json to_json(const LiveMigrationOptions& o) {
  Json disks = Json::array();
  for (const auto& [t, p] : o.disks)
    disks.push(Json::object().set("target", Json::string(t)).set("path", Json::string(p)));
  Json j = Json::object().set("dest_host", Json::string(o.dest_host));
  if (o.type) j.set("type", Json::string(kind_name(*o.type)));
  if (o.storage) j.set("storage", Json::string(*o.storage));
  return std::move(j)
      .set("disks", disks)
      .set("bandwidth", Json::integer(static_cast<std::int64_t>(o.bandwidth)))
      .set("compress", Json::string(o.compress))
      .set("parallel", Json::integer(o.parallel))
      .set("auto_converge", Json::boolean(o.auto_converge))
      .set("postcopy", Json::boolean(o.postcopy))
      .set("max_downtime_ms", Json::integer(o.max_downtime.count()))
      .set("timeout_per_gib", Json::integer(o.timeout_per_gib.count()))
      .set("progress_timeout", Json::integer(o.progress_timeout.count()))
      .set("timeout_action", Json::string(o.timeout_action))
      .set("tls", Json::boolean(o.tls))
      .set("keep_source", Json::boolean(o.keep_source))
      .set("force", Json::boolean(o.force))
      .set("shallow", Json::boolean(o.shallow))
      .set("verify", Json::boolean(o.verify))
      .set("start", Json::boolean(o.start));
}

LiveMigrationOptions live_options_from_json(const Json& j) {
  LiveMigrationOptions o;
  o.dest_host = j.get_string("dest_host");
  if (std::optional<std::string> type = j.find_string("type")) o.type = parse_kind(*type);
  o.storage = j.find_string("storage");
  for (const Json& d : j.get("disks").items())
    o.disks.emplace_back(d.get_string("target"), d.get_string("path"));
  o.bandwidth = static_cast<std::uint64_t>(j.get_int("bandwidth"));
  o.compress = j.get_string("compress");
  o.parallel = static_cast<int>(j.get_int("parallel"));
  o.auto_converge = j.get_bool("auto_converge");
  o.postcopy = j.get_bool("postcopy");
  o.max_downtime = std::chrono::milliseconds(j.get_int("max_downtime_ms"));
  o.timeout_per_gib = std::chrono::seconds(j.get_int("timeout_per_gib"));
  o.progress_timeout = std::chrono::seconds(j.get_int("progress_timeout"));
  o.timeout_action = j.get_string("timeout_action");
  o.tls = j.get_bool("tls");
  o.keep_source = j.get_bool("keep_source");
  o.force = j.get_bool("force");
  o.shallow = j.find_bool("shallow").value_or(false);
  o.verify = j.find_bool("verify").value_or(false);
  o.start = j.find_bool("start").value_or(false);
  return o;
}

Json to_json(const LiveMigrationPlan& p) {
  Json copies = Json::array();
  for (const auto& m : p.copies) copies.push(to_json(m));
  Json shared = Json::object();
  for (const auto& [t, path] : p.shared) shared.set(t, Json::string(path));
  return Json::object()
      .set("vm", Json::string(p.vm))
      .set("source_host", Json::string(p.source_host))
      .set("dest_host", Json::string(p.dest_host))
      .set("dest_peer_uri", Json::string(p.dest_peer_uri))
      .set("migrate_uri", Json::string(p.migrate_uri))
      .set("copies", copies)
      .set("shared", shared)
      .set("memory_bytes", Json::integer(static_cast<std::int64_t>(p.memory_bytes)))
      .set("predicted_total_ms", Json::integer(p.prediction.total.count()))
      .set("predicted_pause_ms", Json::integer(p.prediction.pause.count()));
}

LiveMigrationPlan live_plan_from_json(const Json& j) {
  LiveMigrationPlan p;
  p.vm = j.get_string("vm");
  p.source_host = j.get_string("source_host");
  p.dest_host = j.get_string("dest_host");
  p.dest_peer_uri = j.get_string("dest_peer_uri");
  p.migrate_uri = j.get_string("migrate_uri");
  for (const Json& d : j.get("copies").items()) p.copies.push_back(disk_move_from_json(d));
  Json shared = j.get("shared");
  for (const auto& t : shared.keys()) p.shared[t] = shared.get_string(t);
  p.memory_bytes = static_cast<std::uint64_t>(j.get_int("memory_bytes"));
  p.prediction.total = std::chrono::milliseconds(j.get_int("predicted_total_ms"));
  p.prediction.pause = std::chrono::milliseconds(j.get_int("predicted_pause_ms"));
  return p;
}

}  // namespace vmshift::migrate
