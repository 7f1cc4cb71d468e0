// Network migration: see quick_migration.h. The VM is off (or saved), so
// nothing changes while its files copy; a copy that stops resumes from its
// journals (`vmshift jobs resume`).
#include <fmt/format.h>

#include <set>

#include "base/error.h"
#include "base/format.h"
#include "hosts/domain.h"
#include "hosts/libvirt_storage.h"
#include "migrate/job_env.h"
#include "migrate/kind.h"
#include "migrate/quick_migration.h"

namespace vmshift::migrate {
namespace {

enum Step : std::size_t { kCheck, kCopy, kVerify, kDefine, kCleanup, kStart };

using Saved = NetworkState;

}  // namespace

std::vector<std::string> network_steps() {
  return {"check", "copy", "verify", "define", "cleanup", "start"};
}

Result run_network(Site& src, Site& dst, const LiveMigrationPlan& plan,
                   const LiveMigrationOptions& o, const std::string& saved_state, JobContext& job) {
  Saved s;
  bool resumed = !saved_state.empty() && saved_state != "{}";
  if (resumed) {
    s = codec::parse<Saved>(saved_state, "saved state");
  } else {
    s.vm = plan.vm;
    for (const auto& m : plan.copies) s.files.push_back(FileCopy{.from = m.source, .to = m.dest});
    if (std::optional<std::string> ms = src.host.managed_save_path(plan.vm)) {
      s.saved_src = *ms;
      s.saved_dst = *ms;  // where libvirt keeps it, on every host
      s.files.push_back(FileCopy{.from = s.saved_src, .to = s.saved_dst});
    }
  }
  auto save = [&] { job.save_state(codec::dump(s)); };
  const std::string& vm = s.vm;
  // On its own host the VM keeps its definition (redefined with the new
  // paths): it is never undefined there.
  bool same_host = plan.source_host == plan.dest_host;
  std::string state = src.host.vm_state(vm).value_or("not defined");
  if (s.phase == "copy" && state != "shut off") {
    job.step(kCheck, StepState::kFailed, state);
    return {Outcome::kFailed,
            fmt::format("Refused: VM '{}' is {} on host '{}'; a network migration moves a "
                        "shut-off VM. Nothing was changed.",
                        vm, state, src.host.name())};
  }
  if (s.phase == "copy" && same_host && !s.saved_src.empty()) {
    job.step(kCheck, StepState::kFailed, "the VM has a saved state");
    return {Outcome::kFailed,
            fmt::format("Refused: VM '{}' on host '{}' has a saved state ({}), which holds the "
                        "paths of its disks: start it and shut it down, then move its storage. "
                        "Nothing was changed.",
                        vm, src.host.name(), s.saved_src)};
  }
  // Whether the VM was started on the source during the move: then the
  // source is what counts and nothing of it may go; the copies, out of
  // date, are removed (with the definition made from them), so that a
  // resume copies again.
  auto started_meanwhile = [&](std::size_t step, bool defined_there) -> std::optional<Result> {
    std::optional<std::string> now = src.host.vm_state(vm);
    if (!hosts::running(now)) return std::nullopt;
    job.step(step, StepState::kFailed,
             fmt::format("the VM is {} on host '{}'", *now, src.host.name()));
    bool remove_copies = true;
    std::string about;
    if (defined_there) {
      try {
        if (hosts::running(dst.host.vm_state(vm))) {
          remove_copies = false;
          about = fmt::format("; it runs on host '{}' too: stop one of them", dst.host.name());
        } else {
          dst.host.undefine(vm);
          about = fmt::format("; its definition on host '{}' was removed again", dst.host.name());
        }
      } catch (const Error& e) {
        remove_copies = false;
        about = fmt::format("; its definition on host '{}' stays ({}): remove it, never start it",
                            dst.host.name(), e.what());
      }
    }
    std::vector<std::string> copies;
    for (auto& f : s.files) {
      copies.push_back(f.to);
      if (!remove_copies) continue;
      try {
        dst.open(f.to)->remove();
      } catch (const Error& e) {
        about += fmt::format("; '{}' stays: {}", f.to, e.what());
      }
      f = FileCopy{.from = f.from, .to = f.to};
    }
    if (remove_copies) {
      s.phase = "copy";
      save();
    }
    return Result{Outcome::kFailed,
                  fmt::format("VM '{}' is {} on host '{}' again (started during the move): it "
                              "runs there on its files, which were all kept; the copies on host "
                              "'{}' ({}) were out of date{}{}.",
                              vm, *now, src.host.name(), dst.host.name(), fmt::join(copies, ", "),
                              remove_copies ? " and were removed" : "", about)};
  };
  job.step(kCheck, StepState::kDone,
           resumed
               ? "resuming where the last run stopped"
               : fmt::format("{} file{} to copy{}", s.files.size(), s.files.size() == 1 ? "" : "s",
                             s.saved_src.empty() ? "" : " (the VM's saved state among them)"));
  save();

  // ---- copy and verify
  if (s.phase == "copy") {
    job.step(kCopy, StepState::kRunning);
    transfer::CopyStats st;
    try {
      st = copy_files(src, dst, s.files, {.bandwidth = o.bandwidth}, job, "copy", save);
    } catch (const Error& e) {
      std::size_t done = 0, all = 0;
      for (const auto& f : s.files) {
        done += f.journal.done.size();
        all += f.journal.chunks();
      }
      if (e.code() == ErrorCode::kCancelled) {
        job.step(kCopy, StepState::kUndone, e.what());
        std::vector<std::string> problems;
        for (const auto& f : s.files) {
          try {
            dst.open(f.to)->remove();
          } catch (const Error& r) {
            problems.push_back(r.what());
          }
        }
        return {
            Outcome::kCancelled,
            fmt::format("Cancelled by request; the partial copies on host '{}' were removed; "
                        "the VM is on host '{}', unchanged{}",
                        dst.host.name(), src.host.name(),
                        problems.empty() ? "." : fmt::format(" ({})", fmt::join(problems, "; ")))};
      }
      job.step(kCopy, StepState::kFailed, e.what());
      return {Outcome::kFailed,
              fmt::format("The copy stopped: {}. The VM is on host '{}', unchanged; {} of {} "
                          "chunks are on host '{}': `vmshift jobs resume` continues from there.",
                          e.what(), src.host.name(), done, all, dst.host.name())};
    }
    job.step(kCopy, StepState::kDone,
             fmt::format("{} of data copied in {:.1f} s", human_bytes(st.data_bytes),
                         static_cast<double>(st.took.count()) / 1000.0));
    job.step(kVerify, StepState::kRunning);
    std::vector<std::string> bad = verify_files(src, dst, s.files, job);
    if (!bad.empty()) {
      job.step(kVerify, StepState::kFailed, bad.front());
      for (auto& f : s.files) f = FileCopy{.from = f.from, .to = f.to};
      for (const auto& f : s.files) dst.open(f.to)->remove();
      save();
      return {Outcome::kFailed,
              fmt::format("The copies differ from their sources: {}. They were removed; the VM "
                          "is on host '{}', unchanged; `vmshift jobs resume` copies again.",
                          fmt::join(bad, "; "), src.host.name())};
    }
    job.step(kVerify, StepState::kDone, "every copy has its source's checksums");
  } else {
    job.step(kCopy, StepState::kSkipped, "done by the earlier run");
    job.step(kVerify, StepState::kSkipped, "done by the earlier run");
  }

  // ---- define (and put the saved state back), on the destination
  if (s.phase == "copy")
    if (auto r = started_meanwhile(kDefine, false)) return *r;
  std::vector<std::pair<std::string, std::string>> paths;
  for (const auto& m : plan.copies) paths.emplace_back(m.target, m.dest);
  std::string xml = hosts::rewrite_disk_paths(src.host.vm_xml(vm, true), paths);
  if (s.phase == "copy") {
    job.step(kDefine, StepState::kRunning);
    try {
      dst.host.define(xml);
      if (!s.saved_dst.empty()) {
        // The saved state becomes the managed-save image there: restored
        // paused (the guest does not run) and saved again, unless it starts.
        dst.host.restore_state(s.saved_dst, xml, !o.start);
        if (!o.start) dst.host.managed_save(vm);
      }
    } catch (const Error& e) {
      job.step(kDefine, StepState::kFailed, e.what());
      return {Outcome::kFailed,
              fmt::format("Defining the VM on host '{}' failed: {}. The VM is on host '{}', "
                          "unchanged; the copies were kept (`vmshift jobs resume` tries again).",
                          dst.host.name(), e.what(), src.host.name())};
    }
    s.phase = "defined";
    save();
    job.step(kDefine, StepState::kDone,
             fmt::format("defined on host '{}' with the new paths{}", dst.host.name(),
                         s.saved_dst.empty() ? ""
                                             : ", its saved state "
                                               "restored"));
  }

  // ---- cleanup: the source goes only now, and only what the VM no
  // longer uses
  if (!same_host)
    if (auto r = started_meanwhile(kCleanup, true)) return *r;
  std::vector<std::string> problems;
  std::set<std::string> in_use;  // files the VM on the source still uses
  bool source_gone = false;
  if (!same_host) {
    try {
      // libvirt refuses to undefine a VM with a saved state: it goes first
      // (it was copied and verified), unless kept.
      if (!o.keep_source && !s.saved_src.empty() && src.host.storage().exists(s.saved_src))
        src.host.storage().remove(s.saved_src);
      if (src.host.vm_state(vm)) src.host.undefine(vm);
      source_gone = true;
    } catch (const Error& e) {
      problems.push_back(fmt::format("the definition on host '{}' stays, and so do its files: {}",
                                     src.host.name(), e.what()));
    }
  } else {
    try {
      for (const auto& [t, p] : src.host.vm_disks(vm, true)) in_use.insert(p);
      if (hosts::running(src.host.vm_state(vm)))
        for (const auto& [t, p] : src.host.vm_disks(vm, false)) in_use.insert(p);
      source_gone = true;
    } catch (const Error& e) {
      problems.push_back(
          fmt::format("the old files stay: cannot check which files VM '{}' "
                      "uses on host '{}': {}",
                      vm, src.host.name(), e.what()));
    }
  }
  if (!o.keep_source && source_gone)
    for (const auto& f : s.files) {
      if (in_use.count(f.from) > 0) {
        problems.push_back(fmt::format("'{}' stays: VM '{}' uses it", f.from, vm));
        continue;
      }
      try {
        if (src.host.storage().exists(f.from)) src.host.storage().remove(f.from);
      } catch (const Error& e) {
        problems.push_back(fmt::format("'{}' stays: {}", f.from, e.what()));
      }
    }
  std::string note = o.keep_source ? "source files kept (--keep-source)"
                     : same_host
                         ? fmt::format(
                               "the VM stays defined on host '{}' with its new paths; the old "
                               "files were removed",
                               src.host.name())
                         : fmt::format("removed from host '{}'", src.host.name());
  for (const auto& p : problems) note += "; " + p;
  job.step(kCleanup, StepState::kDone, note);
  s.phase = "done";
  save();

  // ---- start
  std::string started = "left shut off";
  if (o.start) {
    try {
      if (s.saved_dst.empty()) dst.host.start(vm);
      started = fmt::format("started on host '{}'", dst.host.name());
      job.step(kStart, StepState::kDone, started);
    } catch (const Error& e) {
      job.step(kStart, StepState::kFailed, e.what());
      return {Outcome::kFailed,
              fmt::format("The VM moved to host '{}' ({}) but could not start there: {}",
                          dst.host.name(), note, e.what())};
    }
  } else {
    job.step(kStart, StepState::kSkipped,
             s.saved_dst.empty() ? "not asked (--start)" : "kept saved (--start resumes it)");
  }
  return {Outcome::kCompleted, fmt::format("network migration of {} to host '{}': {}; {}", vm,
                                           dst.host.name(), note, started)};
}

const JobKind& network_kind() {
  static const JobKind kind{
      .id = Kind::kNetwork,
      .steps = network_steps(),
      .slots = {{Side::kSource, Limit::kStorage}, {Side::kDest, Limit::kStorage}},
      .run = [](const JobRecord& job, JobEnv& env, JobContext& ctx) -> Result {
        return run_on_sites(job, env, ctx,
                            [&](Site& src, Site& dst, const MigrationParams& p, JobContext& c) {
                              return run_network(src, dst, p.plan, p.options, job.state, c);
                            });
      },
      .recover = nullptr,
      .resume = JobKind::Resume{.continues = "migration", .done_so_far = chunks_copied},
      .files = [](const JobRecord& job, bool moved) { return plan_files(job.params, moved); },
      .memory_rate = nullptr,
  };
  return kind;
}

}  // namespace vmshift::migrate
