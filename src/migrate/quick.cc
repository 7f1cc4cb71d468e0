// Quick migration: see quick_migration.h. The disks stay on storage both
// hosts share; only the saved state changes hosts, through that storage.
#include <fmt/format.h>

#include <functional>

#include "base/error.h"
#include "hosts/libvirt_storage.h"
#include "migrate/job_env.h"
#include "migrate/kind.h"
#include "migrate/quick_migration.h"

namespace vmshift::migrate {
namespace {

enum Step : std::size_t { kCheck, kSave, kRestore, kVerify, kCleanup };

using Saved = QuickState;

// Undo never depends on the job store: a report it cannot take is told in
// the result (appended to problems), and the undo goes on from memory.
void undo_report(std::string& problems, const std::function<void()>& report) {
  try {
    report();
  } catch (const Error& e) {
    if (problems.find("could not be recorded") == std::string::npos)
      problems += fmt::format("; the job's progress could not be recorded: {}", e.what());
  }
}

// The VM is saved: restores it on the source. Returns what went wrong.
std::string restore_on_source(Site& src, const Saved& s) {
  if (hosts::running(src.host.vm_state(s.vm))) return "";
  try {
    src.host.restore_state(s.state, s.saved_xml, false);
    src.host.storage().remove(s.state);
  } catch (const Error& e) {
    return fmt::format(
        "; it could not be restored on host '{}' from '{}': {} (the saved state "
        "was kept)",
        src.host.name(), s.state, e.what());
  }
  return "";
}

Result finish(Site& src, Site& dst, Saved& s, JobContext& job, const std::string& pause_note) {
  job.step(kVerify, StepState::kRunning);
  std::optional<std::string> state = dst.host.vm_state(s.vm);
  if (!hosts::running(state)) {
    job.step(kVerify, StepState::kFailed, "not running");
    return {Outcome::kFailed,
            fmt::format("After the restore the VM is {} on host '{}'. Nothing was deleted.",
                        state.value_or("not defined"), dst.host.name())};
  }
  dst.host.define(dst.host.vm_xml(s.vm, false));
  job.step(kVerify, StepState::kDone,
           fmt::format("running on host '{}'; defined there", dst.host.name()));
  std::vector<std::string> problems;
  // The source's definition names the same shared disks as the VM that
  // runs on the destination now: it must go, or the job is not a success.
  std::string undefine_error;
  try {
    src.host.undefine(s.vm);
  } catch (const Error& e) {
    undefine_error = e.what();
    problems.push_back(
        fmt::format("the old definition on host '{}' stays: {}", src.host.name(), e.what()));
  }
  try {
    src.host.storage().remove(s.state);
  } catch (const Error& e) {
    problems.push_back(fmt::format("'{}' could not be removed: {}", s.state, e.what()));
  }
  job.step(kCleanup, undefine_error.empty() ? StepState::kDone : StepState::kFailed,
           problems.empty() ? "source definition and saved state removed"
                            : fmt::format("{}", fmt::join(problems, "; ")));
  s.phase = "done";
  job.save_state(codec::dump(s));
  if (!undefine_error.empty()) {
    std::vector<std::string> disks;
    try {
      for (const auto& [target, path] : dst.host.vm_disks(s.vm, false)) disks.push_back(path);
    } catch (const Error&) {
      disks.push_back("its shared disks");
    }
    return {Outcome::kFailed,
            fmt::format("The VM runs on host '{}' ({}), but host '{}' still has a definition of "
                        "VM '{}' on the same disks ({}): removing it failed: {}. Do not start "
                        "it there: remove that definition (virsh undefine {} on host '{}', "
                        "--keep-nvram if it has one).",
                        dst.host.name(), pause_note, src.host.name(), s.vm, fmt::join(disks, ", "),
                        undefine_error, s.vm, src.host.name())};
  }
  return {Outcome::kCompleted,
          fmt::format("quick migration of {} to host '{}': {}", s.vm, dst.host.name(), pause_note)};
}

}  // namespace

std::vector<std::string> quick_steps() { return {"check", "save", "restore", "verify", "cleanup"}; }

Result run_quick(Site& src, Site& dst, const LiveMigrationPlan& plan, const LiveMigrationOptions&,
                 JobContext& job) {
  if (plan.shared.empty())
    return {Outcome::kFailed,
            "Refused: a quick migration needs the disks on storage both hosts share. Nothing was "
            "changed."};
  Saved s;
  s.vm = plan.vm;
  s.state = state_path(hosts::dirname_of(plan.shared.begin()->second), plan.vm);
  job.step(kCheck, StepState::kDone,
           fmt::format("the state goes through '{}'; pause predicted {} ms", s.state,
                       plan.prediction.pause.count()));

  // ---- save: the pause begins
  job.step(kSave, StepState::kRunning);
  job.save_state(codec::dump(s));
  auto start = std::chrono::steady_clock::now();
  try {
    src.host.save_state(s.vm, s.state);
    s.saved_xml = src.host.saved_xml(s.state);
  } catch (const Error& e) {
    std::string unrecorded;
    undo_report(unrecorded, [&] { job.step(kSave, StepState::kFailed, e.what()); });
    std::string more = hosts::running(src.host.vm_state(s.vm)) ? "" : restore_on_source(src, s);
    s.phase = "undone";
    undo_report(unrecorded, [&] { job.save_state(codec::dump(s)); });
    more += unrecorded;
    return {Outcome::kFailed, fmt::format("Saving the VM's state failed: {}. The VM runs on host "
                                          "'{}'{}.",
                                          e.what(), src.host.name(), more)};
  }
  s.phase = "saved";
  job.save_state(codec::dump(s));
  job.step(kSave, StepState::kDone, fmt::format("state saved to '{}'", s.state));

  // ---- restore on the destination: the pause ends
  job.step(kRestore, StepState::kRunning);
  try {
    job.checkpoint("restore");
    // The last chance to cancel (or to undo for a job store that cannot be
    // written) before the switch-over.
    if (job.cancel_requested()) throw Error(ErrorCode::kCancelled, "cancelled by request");
    dst.host.restore_state(s.state, s.saved_xml, false);
  } catch (const Error& e) {
    bool cancelled = e.code() == ErrorCode::kCancelled;
    if (cancelled || !hosts::running(dst.host.vm_state(s.vm))) {
      std::string unrecorded;
      undo_report(unrecorded, [&] {
        job.step(kRestore, cancelled ? StepState::kUndone : StepState::kFailed, e.what());
      });
      std::string more = restore_on_source(src, s);
      s.phase = "undone";
      undo_report(unrecorded, [&] { job.save_state(codec::dump(s)); });
      more += unrecorded;
      if (cancelled)
        return {Outcome::kCancelled,
                fmt::format("Cancelled by request during the pause. The VM was restored on host "
                            "'{}'{}.",
                            src.host.name(), more)};
      return {Outcome::kFailed,
              fmt::format("Restoring the VM on host '{}' failed: {}. The VM was restored on host "
                          "'{}'{}.",
                          dst.host.name(), e.what(), src.host.name(), more)};
    }
  }
  auto pause = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  job.pause(pause);
  s.phase = "restored";
  job.save_state(codec::dump(s));
  job.step(
      kRestore, StepState::kDone,
      fmt::format("running on host '{}' after a pause of {} ms", dst.host.name(), pause.count()));
  return finish(
      src, dst, s, job,
      fmt::format("paused {} ms (predicted {} ms)", pause.count(), plan.prediction.pause.count()));
}

Result recover_quick(Site& src, Site& dst, const std::string& text, JobContext& job) {
  Saved s = codec::parse<Saved>(text, "saved state");
  if (s.phase == "done")
    return {Outcome::kCompleted, "the job had finished before its process died"};
  if (hosts::running(dst.host.vm_state(s.vm)))
    return finish(src, dst, s, job, "completed by recovery after its vmshift process died");
  if (hosts::running(src.host.vm_state(s.vm)))
    return {Outcome::kRolledBack, fmt::format("The vmshift process running this job died before "
                                              "the VM was saved; it runs on host '{}', unchanged.",
                                              src.host.name())};
  std::string more = restore_on_source(src, s);
  return {Outcome::kRolledBack,
          fmt::format("The vmshift process running this job died during the pause; the VM was "
                      "restored on host '{}'{}.",
                      src.host.name(), more)};
}

const JobKind& quick_kind() {
  static const JobKind kind{
      .id = Kind::kQuick,
      .steps = quick_steps(),
      .slots = {{Side::kSource, Limit::kLive}, {Side::kDest, Limit::kLive}},
      .run = [](const JobRecord& job, JobEnv& env, JobContext& ctx) -> Result {
        return run_on_sites(job, env, ctx,
                            [](Site& src, Site& dst, const MigrationParams& p, JobContext& c) {
                              return run_quick(src, dst, p.plan, p.options, c);
                            });
      },
      .recover = [](const JobRecord& job, JobEnv& env, JobContext& ctx) -> Result {
        return recover_on_sites(job, env, ctx, recover_quick);
      },
      .resume = std::nullopt,
      .files = [](const JobRecord& job, bool moved) { return plan_files(job.params, moved); },
      .memory_rate = nullptr,
  };
  return kind;
}

}  // namespace vmshift::migrate
