#include "migrate/live_storage.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <thread>

#include "base/error.h"
#include "base/format.h"
#include "hosts/libvirt_storage.h"
#include "migrate/created.h"
#include "migrate/job_env.h"
#include "migrate/kind.h"

namespace vmshift::migrate {
namespace {

using hosts::dirname_of;

enum Step : std::size_t { kCheck, kCopy, kPivot, kVerify, kPersist, kCleanup };
constexpr auto kPoll = std::chrono::milliseconds(200);
constexpr auto kSwitchTime = std::chrono::seconds(60);

// How long one disk's switch may take: kSwitchTime, or VMSHIFT_SWITCH_SECONDS
// (fault injection: tests shorten it to reach the deadline).
std::chrono::seconds switch_time() {
  if (const char* v = std::getenv("VMSHIFT_SWITCH_SECONDS"); v != nullptr && *v != '\0')
    return std::chrono::seconds(std::strtol(v, nullptr, 10));
  return kSwitchTime;
}

using Saved = LiveStorageState;
std::string where(const std::vector<DiskMove>& moves, bool on_dest) {
  std::string s;
  for (const auto& m : moves)
    s += fmt::format("{}{} on {}", s.empty() ? "" : ", ", m.target, on_dest ? m.dest : m.source);
  return s;
}

// Ends the copies that were started and removes their destination files,
// those this job created and that are still those files. Returns what
// could not be undone, as sentences.
std::vector<std::string> undo_copies(guest::Guest& g, const std::vector<DiskMove>& started,
                                     std::vector<Created>& created) {
  std::vector<std::string> problems;
  for (const auto& m : started) {
    try {
      g.abort_copy(m.target, Deadline::after(kSwitchTime));
    } catch (const Error& e) {
      problems.push_back(
          fmt::format("the copy of {} could not be cancelled: {}", m.target, e.what()));
      continue;  // never delete a file a live job may still use
    }
    std::vector<Created> mine, rest;
    for (const auto& c : created) (c.path == m.dest ? mine : rest).push_back(c);
    remove_all_created(g.storage(), "", mine, problems);
    rest.insert(rest.end(), mine.begin(), mine.end());
    created = std::move(rest);
  }
  return problems;
}

std::string summary(const std::vector<DiskMove>& moves) {
  std::uint64_t bytes = 0;
  for (const auto& m : moves) bytes += m.need;
  return fmt::format("{} disk{} ({} allocated)", moves.size(), moves.size() == 1 ? "" : "s",
                     human_bytes(bytes));
}

// Deletes the top layer of each source; backing files may be shared by
// other VMs and stay. Returns a note.
std::string delete_sources(guest::Guest& g, const std::vector<DiskMove>& moves, bool keep) {
  if (keep) return "source files kept (--keep-source)";
  std::vector<std::string> problems, backing;
  for (const auto& m : moves) {
    try {
      g.storage().remove(m.source);
    } catch (const Error& e) {
      problems.push_back(fmt::format("'{}' could not be deleted: {}", m.source, e.what()));
    }
    for (const auto& b : m.backing) backing.push_back(b);
  }
  std::string note = problems.empty() ? "source files deleted" : "source files deleted, except";
  for (const auto& p : problems) note += " " + p;
  if (!backing.empty())
    note += fmt::format(" (backing files left in place, other VMs may use them: {})",
                        fmt::join(backing, ", "));
  return note;
}

}  // namespace

DiskMove move_of(const guest::DiskInfo& d, const std::string& dest) {
  DiskMove m;
  m.target = d.target;
  m.source = d.path;
  m.dest = dest;
  m.format = d.format;
  m.capacity = d.capacity;
  m.backing = d.backing;
  m.backing_format = d.backing_format;
  return m;
}

void write_state_disks(const LiveStorageState& s, Json& o) {
  Json disks = Json::array();
  for (const auto& m : s.moves)
    disks.push(codec::encode(m).set("pivoted", Json::boolean(s.pivoted.count(m.target) > 0)));
  o.set("disks", disks);
}

void read_state_disks(const Json& o, LiveStorageState& s, const std::string& path) {
  std::vector<Json> disks;  // each a DiskMove with "pivoted"
  codec::decode_key(o, "disks", disks, path);
  s.moves.clear();
  s.pivoted.clear();
  for (std::size_t i = 0; i < disks.size(); ++i) {
    std::string at = codec::index_path(codec::key_path(path, "disks"), i);
    DiskMove& m = s.moves.emplace_back();
    codec::decode_at(disks[i], m, at);
    bool pivoted = false;
    codec::decode_key(disks[i], "pivoted", pivoted, at);
    if (pivoted) s.pivoted.insert(m.target);
  }
}

// A bandwidth shared by n copies (at least 1 byte/s each: 0 means unlimited).
static std::uint64_t share(std::uint64_t bandwidth, std::size_t n) {
  if (bandwidth == 0 || n == 0) return bandwidth;
  return std::max<std::uint64_t>(1, bandwidth / n);
}

void clear_destination(hosts::Storage& storage, const DiskMove& m, bool force) {
  if (!storage.exists(m.dest)) return;
  if (!force || !m.replace_existing || !m.replaces)
    throw Error(ErrorCode::kAlreadyExists,
                fmt::format("'{}' appeared after the checks; it was left in place", m.dest));
  if (!storage.remove_if_same(m.dest, *m.replaces))
    throw Error(ErrorCode::kAlreadyExists,
                fmt::format("'{}' is not the file the checks found (it was replaced "
                            "meanwhile); it was left in place",
                            m.dest));
}

std::vector<std::string> live_storage_steps() {
  return {"check", "copy", "pivot", "verify", "persist", "cleanup"};
}

Result run_live_storage(guest::Guest& g, const LiveStoragePlan& plan, const LiveStorageOptions& o,
                        JobContext& job) {
  Saved saved;
  saved.keep_source = o.keep_source;
  saved.moves = plan.moves;
  job.save_state(codec::dump(saved));
  job.step(kCheck, StepState::kDone, fmt::format("{} to move", summary(plan.moves)));

  // ---- copy
  std::vector<DiskMove> started;
  auto fail_before_pivot = [&](const std::string& why, Outcome outcome) {
    job.step(kCopy, outcome == Outcome::kCancelled ? StepState::kUndone : StepState::kFailed, why);
    std::vector<std::string> problems = undo_copies(g, started, saved.created);
    saved.phase = "undone";
    job.save_state(codec::dump(saved));
    std::string state =
        problems.empty()
            ? fmt::format(
                  "The VM runs on its original disks ({}); the partial destination files "
                  "were removed.",
                  where(plan.moves, false))
            : with_problems(
                  fmt::format("The VM runs on its original disks ({}).", where(plan.moves, false)),
                  problems);
    return Result{outcome, fmt::format("{}. {}", why, state)};
  };

  job.step(kCopy, StepState::kRunning);
  try {
    for (const auto& m : plan.moves) {
      // The copy makes its destination (and would overwrite a file there):
      // there must be none, but the one --force replaces, which the checks
      // found and which must still be that file.
      clear_destination(g.storage(), m, true);
      g.start_copy({.target = m.target,
                    .dest = m.dest,
                    .format = m.format,
                    .shallow = o.shallow,
                    .bandwidth = share(o.bandwidth, plan.moves.size()),
                    .sync_writes = o.sync_writes});
      started.push_back(m);
      // The copy made its file where there was none: this job's.
      if (g.storage().exists(m.dest)) {
        saved.created.push_back(record_created(g.storage(), "", m.dest));
        job.save_state(codec::dump(saved));
      }
    }
    // --bandwidth is for the whole move: shared by the disks still copying.
    std::size_t copying = plan.moves.size();
    std::set<std::string> ready;
    std::uint64_t best_remaining = UINT64_MAX;
    auto best_time = std::chrono::steady_clock::now();
    for (;;) {
      if (job.cancel_requested())
        return fail_before_pivot("Cancelled by request during the copy", Outcome::kCancelled);
      std::uint64_t done = 0, total = 0;
      bool all_ready = true;
      for (const auto& m : plan.moves) {
        guest::CopyStatus s = g.copy_status(m.target);
        if (!s.active || s.error)
          throw Error(ErrorCode::kCommandFailed,
                      fmt::format("the copy of disk {} stopped: {}", m.target,
                                  s.error.value_or("the job ended without a switch (e.g. the "
                                                   "destination filled up; see the host's "
                                                   "libvirt log)")));
        done += s.done;
        total += s.total;
        all_ready = all_ready && s.ready;
        if (s.ready) ready.insert(m.target);
      }
      if (o.bandwidth > 0 && !all_ready && plan.moves.size() - ready.size() != copying) {
        copying = plan.moves.size() - ready.size();
        for (const auto& m : plan.moves)
          if (!ready.count(m.target)) g.set_copy_bandwidth(m.target, share(o.bandwidth, copying));
      }
      job.progress(all_ready ? "ready" : "copy", done, total);
      if (all_ready) break;
      // Converging means what is left keeps shrinking: if it has not reached
      // a new low for progress_timeout, the guest writes faster than the copy.
      std::uint64_t remaining = total - std::min(done, total);
      auto now = std::chrono::steady_clock::now();
      if (remaining < best_remaining) {
        best_remaining = remaining;
        best_time = now;
      } else if (now - best_time > o.progress_timeout) {
        throw Error(ErrorCode::kTimeout,
                    fmt::format("the copy is not converging: {} left and no progress for {} s; "
                                "the guest writes faster than the copy (use --sync-writes, or a "
                                "higher --bandwidth)",
                                human_bytes(remaining), o.progress_timeout.count()));
      }
      std::this_thread::sleep_for(kPoll);
    }
  } catch (const Error& e) {
    return fail_before_pivot(fmt::format("Copy failed: {}", e.what()), Outcome::kFailed);
  }
  job.checkpoint("ready");
  if (job.cancel_requested())
    return fail_before_pivot("Cancelled by request before the switch", Outcome::kCancelled);
  job.step(kCopy, StepState::kDone, fmt::format("{} in sync", summary(plan.moves)));

  // ---- pivot
  job.step(kPivot, StepState::kRunning);
  saved.phase = "pivot";
  job.save_state(codec::dump(saved));
  std::chrono::milliseconds longest{0};
  std::string pivot_detail;
  for (std::size_t i = 0; i < plan.moves.size(); ++i) {
    const DiskMove& m = plan.moves[i];
    try {
      auto took = g.pivot(m.target, Deadline::after(switch_time()));
      longest = std::max(longest, took);
      pivot_detail +=
          fmt::format("{}{} {} ms", pivot_detail.empty() ? "" : ", ", m.target, took.count());
      saved.pivoted.insert(m.target);
      job.save_state(codec::dump(saved));
    } catch (const Error& e) {
      std::vector<DiskMove> switched(plan.moves.begin(), plan.moves.begin() + static_cast<long>(i));
      std::vector<DiskMove> rest(plan.moves.begin() + static_cast<long>(i), plan.moves.end());
      // A switch that timed out was asked of QEMU and may still happen: its
      // disk may end on either file, so neither is touched.
      std::optional<DiskMove> pending;
      if (e.code() == ErrorCode::kTimeout) {
        pending = m;
        rest.erase(rest.begin());
      }
      std::vector<std::string> problems = undo_copies(g, rest, saved.created);
      job.step(kPivot, StepState::kFailed, e.what());
      saved.phase = pending ? "pivot" : "partial";
      job.save_state(codec::dump(saved));
      std::string msg = fmt::format("Switching disk {} failed: {}.", m.target, e.what());
      if (pending)
        msg += fmt::format(
            " QEMU may still finish that switch: disk {} runs on '{}' until it does and on "
            "'{}' after; both files are kept. `virsh domblklist` shows which file the disk "
            "uses, and `virsh domblklist --inactive` which one the VM's definition names.",
            m.target, m.source, m.dest);
      if (!switched.empty())
        msg += fmt::format(" Already switched, and running on the new files: {}.",
                           where(switched, true));
      if (!rest.empty())
        msg += fmt::format(
            " Still on the original files: {} (their copies were cancelled and "
            "removed).",
            where(rest, false));
      msg += " No source file was deleted.";
      return Result{Outcome::kFailed, with_problems(msg, problems)};
    }
  }
  job.pause(longest);
  job.step(kPivot, StepState::kDone, pivot_detail);
  job.checkpoint("switched");

  // ---- verify: the running guest really uses the new files.
  job.step(kVerify, StepState::kRunning);
  for (const auto& m : plan.moves) {
    std::string active = g.active_path(m.target);
    if (active != m.dest) {
      job.step(kVerify, StepState::kFailed);
      return Result{Outcome::kFailed,
                    fmt::format("After the switch, disk {} uses '{}' instead of '{}'. No source "
                                "file was deleted; check the VM.",
                                m.target, active, m.dest)};
    }
  }
  job.step(kVerify, StepState::kDone, "the guest uses the new files");

  // ---- persist and clean up
  std::map<std::string, std::string> paths;
  for (const auto& m : plan.moves) paths[m.target] = m.dest;
  std::string persist_note;
  try {
    persist_note = g.persist_paths(paths);
    job.step(kPersist, StepState::kDone, persist_note);
  } catch (const Error& e) {
    job.step(kPersist, StepState::kFailed, e.what());
    return Result{Outcome::kFailed,
                  fmt::format("The disks moved and the VM runs on the new files ({}), but its "
                              "stored definition could not be updated: {}. A restart would use "
                              "the old files, which were kept.",
                              where(plan.moves, true), e.what())};
  }
  std::string cleanup_note = delete_sources(g, plan.moves, o.keep_source);
  job.step(kCleanup, o.keep_source ? StepState::kSkipped : StepState::kDone, cleanup_note);
  saved.phase = "done";
  job.save_state(codec::dump(saved));
  return Result{Outcome::kCompleted,
                fmt::format("moved {}: {}; switch took {} ms; {}", summary(plan.moves),
                            where(plan.moves, true), longest.count(), cleanup_note)};
}

Result recover_live_storage(guest::Guest& g, const std::string& state_text, JobContext& job) {
  Saved saved = codec::parse<Saved>(state_text, "saved state");
  if (saved.phase == "done")
    return Result{Outcome::kCompleted, "the job had finished its work before its process died"};
  std::vector<DiskMove> on_dest, on_source;
  for (const auto& m : saved.moves) {
    std::string active;
    try {
      active = g.active_path(m.target);
    } catch (const Error& e) {
      return Result{Outcome::kFailed,
                    fmt::format("Recovery cannot read disk {} of {}: {}. Files left as they were: "
                                "sources {}; destinations {}.",
                                m.target, g.describe(), e.what(), where(saved.moves, false),
                                where(saved.moves, true))};
    }
    (active == m.dest ? on_dest : on_source).push_back(m);
  }
  std::vector<std::string> problems = undo_copies(g, on_source, saved.created);
  if (on_source.empty()) {
    std::map<std::string, std::string> paths;
    for (const auto& m : on_dest) paths[m.target] = m.dest;
    std::string note = g.persist_paths(paths);
    job.step(kPersist, StepState::kDone, note);
    std::string cleanup = delete_sources(g, on_dest, saved.keep_source);
    job.step(kCleanup, saved.keep_source ? StepState::kSkipped : StepState::kDone, cleanup);
    return Result{Outcome::kCompleted,
                  fmt::format("Completed by recovery after its vmshift process died: the switch "
                              "had happened; the VM runs on {}; {}",
                              where(on_dest, true), cleanup)};
  }
  if (on_dest.empty()) {
    job.step(kCopy, StepState::kUndone, "cancelled by recovery");
    return Result{Outcome::kRolledBack,
                  with_problems(fmt::format("The vmshift process running this job died before "
                                            "the switch; recovery cancelled the copy. The VM runs "
                                            "on its original disks ({}); the destination files "
                                            "were removed.",
                                            where(on_source, false)),
                                problems)};
  }
  return Result{Outcome::kFailed,
                with_problems(fmt::format("The vmshift process running this job died during the "
                                          "switch. Switched, running on the new files: {}. Still "
                                          "on the original files: {} (copies cancelled and "
                                          "removed). No source file was deleted.",
                                          where(on_dest, true), where(on_source, false)),
                              problems)};
}

Json live_storage_params(const GuestSpec& spec, const LiveStorageOptions& options) {
  return Json::object().set("guest", codec::encode(spec)).set("options", codec::encode(options));
}

const JobKind& live_storage_kind() {
  static const JobKind kind{
      .id = Kind::kLiveStorage,
      .steps = live_storage_steps(),
      .slots = {{Side::kSource, Limit::kStorage}},
      .run = [](const JobRecord& job, JobEnv& env, JobContext& ctx) -> Result {
        Json params = Json::parse(job.params);
        GuestSpec spec = codec::decode<GuestSpec>(params.get("guest"), "guest");
        LiveStorageOptions options =
            codec::decode<LiveStorageOptions>(params.get("options"), "options");
        std::unique_ptr<guest::Guest> g = env.open_guest(spec);
        LiveStoragePlan plan;
        try {
          // The checks run again: things may have changed while the job waited.
          plan = env.plan_storage_move(*g, spec, options);
        } catch (const Error& e) {
          ctx.step(0, StepState::kFailed, e.what());
          return {Outcome::kFailed, fmt::format("Refused: {}. Nothing was changed.", e.what())};
        }
        for (const auto& n : plan.notes) ctx.note(n);
        return run_live_storage(*g, plan, options, ctx);
      },
      .recover = [](const JobRecord& job, JobEnv& env, JobContext& ctx) -> Result {
        Json params = Json::parse(job.params);
        std::unique_ptr<guest::Guest> g =
            env.open_guest(codec::decode<GuestSpec>(params.get("guest"), "guest"));
        return recover_live_storage(*g, job.state, ctx);
      },
      .resume = std::nullopt,
      // Where each disk is, from the last recovery data: switched disks on
      // their destination.
      .files =
          [](const JobRecord& job, bool) {
            std::vector<std::string> files;
            for (const Json& d : Json::parse(job.state).get("disks").items()) {
              bool pivoted = d.has("pivoted") && d.get_bool("pivoted");
              files.push_back(fmt::format("{} '{}'", d.get_string("target"),
                                          d.get_string(pivoted ? "dest" : "source")));
            }
            return files;
          },
      .memory_rate = nullptr,
  };
  return kind;
}

}  // namespace vmshift::migrate
