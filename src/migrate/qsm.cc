// Quick storage migration: see quick_migration.h.
#include <fmt/format.h>

#include <thread>

#include "base/error.h"
#include "base/format.h"
#include "hosts/domain.h"
#include "hosts/libvirt_storage.h"
#include "migrate/created.h"
#include "migrate/job_env.h"
#include "migrate/kind.h"
#include "migrate/quick_migration.h"

namespace vmshift::migrate {
namespace {

enum Step : std::size_t {
  kCheck,
  kSnapshot,
  kCopy,
  kSave,
  kTransfer,
  kRestore,
  kMerge,
  kVerify,
  kCleanup
};
constexpr auto kMergeTime = std::chrono::minutes(10);

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using Disk = QsmDisk;
using Saved = QsmState;

void remove_quietly(hosts::Storage& s, const std::string& path, std::vector<std::string>& problems,
                    const std::string& host) {
  try {
    if (s.exists(path)) s.remove(path);
  } catch (const Error& e) {
    problems.push_back(
        fmt::format("'{}' on host '{}' could not be removed: {}", path, host, e.what()));
  }
}

// The paths of `paths` that have no file now, on a storage.
std::vector<std::string> absent(hosts::Storage& s, const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths)
    if (!s.exists(p)) out.push_back(p);
  return out;
}

class Qsm {
 public:
  Qsm(Site& src, Site& dst, JobContext& job, Saved saved)
      : src_(src), dst_(dst), job_(job), s_(std::move(saved)) {}

  void save() { job_.save_state(codec::dump(s_)); }

  // The destination file of every disk.
  std::vector<std::string> dests() const {
    std::vector<std::string> v;
    for (const auto& d : s_.disks) v.push_back(d.dest);
    return v;
  }

  // Undo never depends on the job store: a report it cannot take is told
  // in the result, and the undo goes on from memory.
  void undo_step(Step step, StepState state, const std::string& detail) {
    try {
      job_.step(step, state, detail);
    } catch (const Error& e) {
      unrecorded(e);
    }
  }
  void undo_save() {
    try {
      save();
    } catch (const Error& e) {
      unrecorded(e);
    }
  }
  void unrecorded(const Error& e) {
    if (unrecorded_.empty())
      unrecorded_.push_back(fmt::format("the job's progress could not be recorded: {}", e.what()));
  }
  // Deletes a file this job created on a host, if it still is that file;
  // a file it did not create stays.
  void remove_mine(hosts::MigrationHost& host, const std::string& path,
                   std::vector<std::string>& problems) {
    std::vector<Created> mine, rest;
    for (const auto& c : s_.created)
      (c.host == host.name() && c.path == path ? mine : rest).push_back(c);
    if (mine.empty()) return;
    remove_all_created(host.storage(), host.name(), mine, problems);
    rest.insert(rest.end(), mine.begin(), mine.end());
    s_.created = std::move(rest);
  }
  // Records the files of `paths` that a call (libvirt's snapshot or save)
  // just made where there was none before (`were_absent`).
  void record_made(hosts::MigrationHost& host, const std::vector<std::string>& were_absent) {
    for (const auto& p : were_absent)
      if (host.storage().exists(p) && !has_created(s_.created, host.name(), p))
        s_.created.push_back(record_created(host.storage(), host.name(), p));
    save();
  }

  // The VM runs on the source on its overlays: merges them back and
  // removes what was made at the destination. Returns problems.
  std::vector<std::string> merge_back() {
    std::vector<std::string> problems;
    std::map<std::string, std::string> live;
    try {
      live = src_.host.vm_disks(s_.vm, false);
    } catch (const Error& e) {
      problems.push_back(
          fmt::format("cannot read the VM's disks on host '{}': {}", src_.host.name(), e.what()));
    }
    for (const auto& d : s_.disks) {
      if (live.count(d.target) && live[d.target] == d.overlay_src) {
        try {
          src_.host.commit_top(s_.vm, d.target, Deadline::after(kMergeTime));
        } catch (const Error& e) {
          problems.push_back(fmt::format("disk {} still runs on its overlay '{}': {}", d.target,
                                         d.overlay_src, e.what()));
          continue;
        }
      }
      remove_mine(src_.host, d.overlay_src, problems);
    }
    remove_destination(problems);
    return problems;
  }

  // Removes the copies this job made on the destination (never a file it
  // did not make, such as the disk's own file).
  void remove_destination(std::vector<std::string>& problems) {
    for (const auto& d : s_.disks) {
      remove_mine(dst_.host, d.dest, problems);
      if (s_.other_host) remove_mine(dst_.host, d.overlay_dst, problems);
    }
    if (s_.other_host && !s_.state_dst.empty()) remove_mine(dst_.host, s_.state_dst, problems);
  }

  // The VM is saved (not running anywhere): restores it on the source as it
  // was (on its overlays), then merges them back.
  std::vector<std::string> restore_on_source() {
    std::vector<std::string> problems;
    if (!hosts::running(src_.host.vm_state(s_.vm))) {
      try {
        src_.host.restore_state(s_.state_src, s_.saved_xml, false);
      } catch (const Error& e) {
        problems.push_back(
            fmt::format("the VM could not be restored on host '{}' from '{}': {}; "
                        "its saved state and all files were kept",
                        src_.host.name(), s_.state_src, e.what()));
        return problems;
      }
    }
    std::vector<std::string> more = merge_back();
    problems.insert(problems.end(), more.begin(), more.end());
    remove_mine(src_.host, s_.state_src, problems);
    return problems;
  }

  Result undo(Step step, const std::string& why, Outcome outcome, bool saved) {
    undo_step(step, outcome == Outcome::kCancelled ? StepState::kUndone : StepState::kFailed, why);
    std::vector<std::string> problems = saved ? restore_on_source() : merge_back();
    s_.phase = "undone";
    undo_save();
    std::string where = fmt::format(
        "The VM {} on host '{}' on its original files{}", saved ? "was restored and runs" : "runs",
        src_.host.name(),
        problems.empty() ? " (the overlays were merged back and removed); the copies on the "
                           "destination were removed"
                         : "");
    problems.insert(problems.end(), unrecorded_.begin(), unrecorded_.end());
    return {outcome, with_problems(fmt::format("{}. {}.", why, where), problems)};
  }

  // Steps after the restore: merge, verify, define, clean up.
  Result finish(std::string pause_note) {
    // ---- merge
    job_.step(kMerge, StepState::kRunning);
    s_.phase = "restored";
    save();
    std::map<std::string, std::string> live = dst_.host.vm_disks(s_.vm, false);
    for (const auto& d : s_.disks) {
      if (live[d.target] == d.overlay_dst) {
        try {
          dst_.host.commit_top(s_.vm, d.target, Deadline::after(kMergeTime));
        } catch (const Error& e) {
          job_.step(kMerge, StepState::kFailed, e.what());
          return {Outcome::kFailed,
                  fmt::format("The VM runs on host '{}', but merging disk {} failed: {}. It still "
                              "runs on the overlay '{}' over '{}'; nothing was deleted.",
                              dst_.host.name(), d.target, e.what(), d.overlay_dst, d.dest)};
        }
      }
      std::vector<std::string> ignored;
      if (s_.other_host) remove_mine(dst_.host, d.overlay_dst, ignored);
    }
    job_.step(kMerge, StepState::kDone, "every overlay merged into its base and removed");
    s_.phase = "merged";
    save();

    // ---- verify and define
    job_.step(kVerify, StepState::kRunning);
    std::optional<std::string> state = dst_.host.vm_state(s_.vm);
    live = dst_.host.vm_disks(s_.vm, false);
    std::vector<std::string> wrong;
    if (!hosts::running(state))
      wrong.push_back(fmt::format("the VM is {} on host '{}'", state.value_or("not defined"),
                                  dst_.host.name()));
    for (const auto& d : s_.disks)
      if (live[d.target] != d.dest)
        wrong.push_back(
            fmt::format("disk {} uses '{}' instead of '{}'", d.target, live[d.target], d.dest));
    if (!wrong.empty()) {
      job_.step(kVerify, StepState::kFailed, fmt::format("{}", fmt::join(wrong, "; ")));
      return {Outcome::kFailed,
              fmt::format("After the restore {}. Nothing was deleted.", fmt::join(wrong, "; "))};
    }
    try {
      dst_.host.define(dst_.host.vm_xml(s_.vm, false));
    } catch (const Error& e) {
      job_.step(kVerify, StepState::kFailed, e.what());
      return {Outcome::kFailed,
              fmt::format("The VM runs on host '{}' on its new files, but its definition could "
                          "not be stored there: {}. Nothing was deleted.",
                          dst_.host.name(), e.what())};
    }
    job_.step(kVerify, StepState::kDone,
              fmt::format("running on host '{}' on {}; defined there", dst_.host.name(),
                          fmt::join(dests(), ", ")));

    // ---- cleanup
    std::vector<std::string> problems;
    // A definition left on the source still names the source disks: they
    // stay (vmshift never deletes a defined VM's files).
    std::optional<std::string> still_defined;
    if (s_.other_host) {
      try {
        src_.host.undefine(s_.vm);
      } catch (const Error& e) {
        still_defined = e.what();
      }
      remove_mine(dst_.host, s_.state_dst, problems);
    }
    remove_mine(src_.host, s_.state_src, problems);
    for (const auto& d : s_.disks) {
      remove_mine(src_.host, d.overlay_src, problems);
      // The source, now that the VM runs on its verified copy; never the
      // copy itself (on one host, the same file under another name).
      bool is_copy = !s_.other_host && (d.base == d.dest || [&] {
        try {
          return src_.host.storage().same_file(d.base, d.dest);
        } catch (const Error&) {
          return true;  // cannot tell: keep it
        }
      }());
      if (!s_.keep_source && !is_copy && !still_defined)
        remove_quietly(src_.host.storage(), d.base, problems, src_.host.name());
    }
    if (still_defined) {
      std::vector<std::string> bases;
      for (const auto& d : s_.disks) bases.push_back(d.base);
      std::string why = fmt::format(
          "The VM runs on host '{}' on {}, verified. Its old definition on host '{}' could not "
          "be removed ({}) and still names {}, which were kept. Do not start it there: remove "
          "it (virsh undefine {} --keep-nvram), then delete those files",
          dst_.host.name(), fmt::join(dests(), ", "), src_.host.name(), *still_defined,
          fmt::join(bases, ", "), s_.vm);
      job_.step(kCleanup, StepState::kFailed, with_problems(why, problems));
      s_.phase = "done";
      save();
      return {Outcome::kFailed, with_problems(why, problems)};
    }
    std::string note = s_.keep_source
                           ? "source disks kept (--keep-source)"
                           : fmt::format("source files removed on host '{}'", src_.host.name());
    job_.step(kCleanup, StepState::kDone, with_problems(note, problems));
    s_.phase = "done";
    save();
    return {Outcome::kCompleted,
            with_problems(fmt::format("quick storage migration of {} to host '{}': {}; {}", s_.vm,
                                      dst_.host.name(), pause_note, note),
                          problems)};
  }

  Result run(const LiveMigrationPlan& plan, const LiveMigrationOptions& o) {
    const std::string& vm = s_.vm;
    // --bandwidth limits the copy while the VM runs; during the pause the
    // overlays and the state travel as fast as the link allows.
    transfer::CopyOptions copy_opts{.bandwidth = o.bandwidth};
    transfer::CopyOptions pause_opts{.bandwidth = 0};
    // A destination that exists is replaced only with --force, only if the
    // plan checked it (no defined VM uses it, no file of the move), and only
    // while it is still that file; any other is left in place.
    for (const auto& m : plan.copies) {
      bool there = false;
      try {
        there = dst_.host.storage().exists(m.dest);
        if (there && o.force && m.replace_existing && m.replaces &&
            dst_.host.storage().remove_if_same(m.dest, *m.replaces))
          there = false;
      } catch (const Error& e) {
        job_.step(kCheck, StepState::kFailed, e.what());
        return {Outcome::kFailed,
                fmt::format("Refused: '{}' on host '{}' could not be replaced: {}. The VM runs on "
                            "host '{}' on its original files, unchanged.",
                            m.dest, dst_.host.name(), e.what(), src_.host.name())};
      }
      if (there) {
        std::string why = fmt::format(
            "'{}' exists on host '{}' and is not a file the checks let --force replace; it was "
            "left in place",
            m.dest, dst_.host.name());
        job_.step(kCheck, StepState::kFailed, why);
        return {Outcome::kFailed,
                fmt::format("Refused: {}. The VM runs on host '{}' on its original files, "
                            "unchanged.",
                            why, src_.host.name())};
      }
    }
    job_.step(kCheck, StepState::kDone,
              fmt::format("{} disk{} to move, pause predicted {} ms", s_.disks.size(),
                          s_.disks.size() == 1 ? "" : "s", plan.prediction.pause.count()));

    // ---- snapshot
    job_.step(kSnapshot, StepState::kRunning);
    save();
    std::map<std::string, std::string> overlays;
    std::vector<std::string> overlay_paths;
    for (const auto& d : s_.disks) {
      overlays[d.target] = d.overlay_src;
      overlay_paths.push_back(d.overlay_src);
    }
    std::vector<std::string> no_overlay_yet;
    try {
      no_overlay_yet = absent(src_.host.storage(), overlay_paths);
      src_.host.snapshot_to_overlays(vm, overlays);
    } catch (const Error& e) {
      // The snapshot is atomic: libvirt made no overlay, or removed it.
      job_.step(kSnapshot, StepState::kFailed, e.what());
      s_.phase = "undone";
      save();
      return {Outcome::kFailed, fmt::format("The snapshot failed: {}. The VM runs on host '{}' on "
                                            "its original files, unchanged.",
                                            e.what(), src_.host.name())};
    }
    // libvirt made the overlays: this job's, where there was none before.
    record_made(src_.host, no_overlay_yet);
    job_.step(kSnapshot, StepState::kDone, "the guest writes to overlays; its disks are bases now");

    // ---- copy the bases while the VM runs
    s_.phase = "copy";
    save();
    job_.step(kCopy, StepState::kRunning);
    auto growth_of = [&] {
      std::uint64_t b = 0;
      for (const auto& d : s_.disks) b += src_.host.storage().allocation(d.overlay_src).value_or(0);
      return b;
    };
    std::uint64_t overlay0 = growth_of();
    auto copy_start = std::chrono::steady_clock::now();
    transfer::CopyStats st;
    try {
      st = copy_files(
          src_, dst_, s_.bases, copy_opts, job_, "copy", [&] { save(); }, &s_.created);
      if (o.verify) {
        std::vector<std::string> bad = verify_files(src_, dst_, s_.bases, job_);
        if (!bad.empty()) throw Error(ErrorCode::kBadData, fmt::format("{}", fmt::join(bad, "; ")));
      }
      job_.checkpoint("copied");
      if (job_.cancel_requested()) throw Error(ErrorCode::kCancelled, "cancelled by request");
    } catch (const Error& e) {
      return undo(kCopy,
                  e.code() == ErrorCode::kCancelled
                      ? std::string("Cancelled by request while the disks copied")
                      : fmt::format("Copying the disks failed: {}", e.what()),
                  e.code() == ErrorCode::kCancelled ? Outcome::kCancelled : Outcome::kFailed,
                  false);
    }
    double copy_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - copy_start).count();
    std::uint64_t overlay1 = growth_of();
    double growth =
        copy_s > 0 ? static_cast<double>(overlay1 - std::min(overlay0, overlay1)) / copy_s : 0;
    // The pause, predicted again now that the overlays' growth is measured.
    QuickInput in{.ram_bytes = plan.memory_bytes,
                  .disk_bytes = 0,
                  .disk_write_bytes_per_s = 0,
                  .link_bytes_per_s = copy_s > 0 ? static_cast<double>(st.data_bytes) / copy_s : 0,
                  .other_host = s_.other_host};
    if (in.link_bytes_per_s <= 0) in.link_bytes_per_s = 100e6;
    // A limited copy measured the limit, not the link.
    if (o.bandwidth > 0 && plan.link_bytes_per_s > 0)
      in.pause_link_bytes_per_s = std::max(plan.link_bytes_per_s, in.link_bytes_per_s);
    Prediction now = predict_quick(in);
    s_.predicted_pause_ms =
        now.pause.count() + static_cast<std::int64_t>(s_.other_host
                                                          ? 1000.0 * static_cast<double>(overlay1) /
                                                                (in.pause_link_bytes_per_s > 0
                                                                     ? in.pause_link_bytes_per_s
                                                                     : in.link_bytes_per_s)
                                                          : 0.0);
    job_.step(kCopy, StepState::kDone,
              fmt::format("{} of bases copied in {:.1f} s; the overlays grew {}/s; pause now "
                          "predicted {} ms",
                          human_bytes(st.data_bytes), copy_s,
                          human_bytes(static_cast<std::uint64_t>(growth)), s_.predicted_pause_ms));

    // ---- save: the pause begins
    job_.step(kSave, StepState::kRunning);
    s_.phase = "saving";
    s_.pause_start_ms = now_ms();
    save();
    auto pause_start = std::chrono::steady_clock::now();
    std::vector<std::string> no_state_yet;
    try {
      no_state_yet = absent(src_.host.storage(), {s_.state_src});
      src_.host.save_state(vm, s_.state_src);
      record_made(src_.host, no_state_yet);
      s_.saved_xml = src_.host.saved_xml(s_.state_src);
    } catch (const Error& e) {
      bool stopped = !hosts::running(src_.host.vm_state(vm));
      return undo(kSave, fmt::format("Saving the VM's state failed: {}", e.what()),
                  Outcome::kFailed, stopped);
    }
    s_.phase = "saved";
    save();
    auto saved_at = std::chrono::steady_clock::now();
    job_.step(
        kSave, StepState::kDone,
        fmt::format(
            "state saved to '{}' ({}) in {} ms", s_.state_src,
            human_bytes(src_.host.storage().allocation(s_.state_src).value_or(0)),
            std::chrono::duration_cast<std::chrono::milliseconds>(saved_at - pause_start).count()));

    // ---- transfer the overlays and the state (another host only)
    job_.step(kTransfer, StepState::kRunning);
    try {
      if (s_.other_host) {
        copy_files(
            src_, dst_, s_.rest, pause_opts, job_, "transfer", [&] { save(); }, &s_.created);
        if (o.verify) {
          std::vector<std::string> bad = verify_files(src_, dst_, s_.rest, job_);
          if (!bad.empty())
            throw Error(ErrorCode::kBadData, fmt::format("{}", fmt::join(bad, "; ")));
        }
      }
      job_.checkpoint("transferred");
      // The last chance to cancel (or to undo for a job store that cannot
      // be written) before the switch-over.
      if (job_.cancel_requested()) throw Error(ErrorCode::kCancelled, "cancelled by request");
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kCancelled)
        return undo(kTransfer, "Cancelled by request during the pause", Outcome::kCancelled, true);
      return undo(kTransfer, fmt::format("Moving the overlays and the state failed: {}", e.what()),
                  Outcome::kFailed, true);
    }
    auto moved_at = std::chrono::steady_clock::now();
    job_.step(
        kTransfer, s_.other_host ? StepState::kDone : StepState::kSkipped,
        s_.other_host
            ? fmt::format("overlays and state on the destination in {} ms",
                          std::chrono::duration_cast<std::chrono::milliseconds>(moved_at - saved_at)
                              .count())
            : "same host: nothing moves");

    // ---- restore on the destination: the pause ends
    job_.step(kRestore, StepState::kRunning);
    std::vector<hosts::LayeredDisk> layers;
    for (const auto& d : s_.disks) layers.push_back({d.target, d.overlay_dst, d.dest, d.format});
    try {
      job_.checkpoint("restore");
      if (job_.cancel_requested()) throw Error(ErrorCode::kCancelled, "cancelled by request");
      std::string xml = hosts::rewrite_layered_disks(s_.saved_xml, layers);
      dst_.host.restore_state(s_.other_host ? s_.state_dst : s_.state_src, xml, false);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kCancelled)
        return undo(kRestore, "Cancelled by request during the pause", Outcome::kCancelled, true);
      if (!hosts::running(dst_.host.vm_state(vm)))
        return undo(
            kRestore,
            fmt::format("Restoring the VM on host '{}' failed: {}", dst_.host.name(), e.what()),
            Outcome::kFailed, true);
    }
    auto pause = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - pause_start);
    job_.pause(pause);
    job_.step(kRestore, StepState::kDone,
              fmt::format("running on host '{}' after a pause of {} ms (predicted {} ms; the "
                          "restore took {} ms)",
                          dst_.host.name(), pause.count(), s_.predicted_pause_ms,
                          std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - moved_at)
                              .count()));
    job_.checkpoint("restored");
    return finish(
        fmt::format("paused {} ms (predicted {} ms)", pause.count(), s_.predicted_pause_ms));
  }

  Result recover() {
    const std::string& ph = s_.phase;
    if (ph == "done") return {Outcome::kCompleted, "the job had finished before its process died"};
    if (ph == "undone")
      return {Outcome::kRolledBack, "the job had undone its work before its process died"};
    // On one host, "at the destination" means running on the new files.
    bool at_dst = hosts::running(dst_.host.vm_state(s_.vm));
    if (at_dst && !s_.other_host) {
      std::map<std::string, std::string> live = dst_.host.vm_disks(s_.vm, false);
      for (const auto& d : s_.disks)
        at_dst = at_dst && (live[d.target] == d.dest || live[d.target] == d.overlay_dst) &&
                 ph != "snapshot" && ph != "copy";
    }
    bool at_src = !at_dst && hosts::running(src_.host.vm_state(s_.vm));
    if (at_dst && ph != "snapshot" && ph != "copy")
      return finish("completed by recovery after its vmshift process died");
    if (at_src) {
      std::vector<std::string> problems = merge_back();
      s_.phase = "undone";
      save();
      return {Outcome::kRolledBack,
              with_problems(fmt::format("The vmshift process running this job died before the "
                                        "pause. The VM runs on host '{}' on its original files; "
                                        "the overlays were merged back and the copies removed.",
                                        src_.host.name()),
                            problems)};
    }
    if (ph == "saving" || ph == "saved") {
      std::vector<std::string> problems = restore_on_source();
      s_.phase = "undone";
      save();
      return {Outcome::kRolledBack,
              with_problems(fmt::format("The vmshift process running this job died during the "
                                        "pause. The VM was restored on host '{}' on its original "
                                        "files.",
                                        src_.host.name()),
                            problems)};
    }
    return {Outcome::kFailed,
            fmt::format("The vmshift process running this job died in phase '{}', and the VM "
                        "runs neither on host '{}' nor on host '{}'; nothing was deleted. Check "
                        "both hosts.",
                        ph, src_.host.name(), dst_.host.name())};
  }

 private:
  Site& src_;
  Site& dst_;
  JobContext& job_;
  Saved s_;
  std::vector<std::string> unrecorded_;
};

}  // namespace

std::string overlay_path(const std::string& disk) { return disk + ".vmshift-overlay.qcow2"; }

std::string state_path(const std::string& dir, const std::string& vm) {
  return dir + "/" + vm + ".vmshift-state";
}

std::vector<std::string> qsm_steps() {
  return {"check", "snapshot", "copy", "save", "transfer", "restore", "merge", "verify", "cleanup"};
}

Result run_qsm(Site& src, Site& dst, const LiveMigrationPlan& plan, const LiveMigrationOptions& o,
               JobContext& job) {
  Saved s;
  s.vm = plan.vm;
  s.other_host = plan.source_host != plan.dest_host;
  s.keep_source = o.keep_source;
  for (const auto& m : plan.copies) {
    Disk d{m.target, m.source, m.dest, m.format, overlay_path(m.source), overlay_path(m.source)};
    if (s.other_host)
      d.overlay_dst = hosts::dirname_of(m.dest) + "/" + hosts::basename_of(d.overlay_src);
    s.disks.push_back(d);
    s.bases.push_back(FileCopy{.from = m.source, .to = m.dest});
    if (s.other_host) s.rest.push_back(FileCopy{.from = d.overlay_src, .to = d.overlay_dst});
  }
  if (s.disks.empty()) return {Outcome::kFailed, "Refused: no disk to move. Nothing was changed."};
  s.state_src = state_path(hosts::dirname_of(s.disks[0].base), plan.vm);
  s.state_dst = s.other_host ? state_path(hosts::dirname_of(s.disks[0].dest), plan.vm) : "";
  if (s.other_host) s.rest.push_back(FileCopy{.from = s.state_src, .to = s.state_dst});
  s.predicted_pause_ms = plan.prediction.pause.count();
  return Qsm(src, dst, job, s).run(plan, o);
}

Result recover_qsm(Site& src, Site& dst, const std::string& state, JobContext& job) {
  return Qsm(src, dst, job, codec::parse<Saved>(state, "saved state")).recover();
}

const JobKind& qsm_kind() {
  static const JobKind kind{
      .id = Kind::kQsm,
      .steps = qsm_steps(),
      .slots = {{Side::kSource, Limit::kStorage}, {Side::kDest, Limit::kStorage}},
      .run = [](const JobRecord& job, JobEnv& env, JobContext& ctx) -> Result {
        return run_on_sites(job, env, ctx,
                            [](Site& src, Site& dst, const MigrationParams& p, JobContext& c) {
                              return run_qsm(src, dst, p.plan, p.options, c);
                            });
      },
      .recover = [](const JobRecord& job, JobEnv& env, JobContext& ctx) -> Result {
        return recover_on_sites(job, env, ctx, recover_qsm);
      },
      .resume = std::nullopt,
      .files = [](const JobRecord& job, bool moved) { return plan_files(job.params, moved); },
      .memory_rate = nullptr,
  };
  return kind;
}

}  // namespace vmshift::migrate
