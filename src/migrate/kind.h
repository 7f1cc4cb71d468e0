// The transfer types vmshift runs as jobs. Kind is how code names a type;
// its name ("live-storage", "qsm", ...) is what the job store, the CLI and
// the JSON output show. The name table in kind.cc is the one place that
// spells the names.
//
// Each kind is declared once, as one JobKind, in its own file
// (live_storage.cc, live_migration.cc for live and live-vsm, qsm.cc,
// quick.cc, network.cc, copy_files.cc): its steps, the slots it holds, how
// it runs and recovers a job from what the job store keeps, and what else
// the layers above learn of its jobs. job_kind() (kind.cc) lists them, one
// line each. core/ runs every job through this table and never parses a
// kind's params or saved state itself.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/codec.h"
#include "migrate/context.h"

namespace vmshift::migrate {

enum class Kind {
  kLiveStorage,  // live storage migration on one host (move-storage)
  kLive,         // live migration, storage shared
  kLiveVsm,      // live migration with the disks copied
  kQsm,          // quick storage migration: copy, save, move the rest, restore
  kQuick,        // quick migration: save and restore through shared storage
  kNetwork,      // a shut-off (or saved) VM's files copied to another place
  kCopy,         // one image file copied between hosts
};

// Every kind, in the order above.
const std::vector<Kind>& all_kinds();

// "live-storage", "live", "live-vsm", "qsm", "quick", "network", "copy".
std::string_view kind_name(Kind kind);

// The kind with that name, or nullopt.
std::optional<Kind> find_kind(std::string_view name);

// The kind with that name; throws Error(kInvalidArgument) naming the known
// ones otherwise.
Kind parse_kind(std::string_view name);

class JobEnv;  // migrate/job_env.h: what a kind needs from above (hosts, guests, checks)

// Which host of its job a slot is on, and which per-host limit it counts
// against (core maps these onto its Slot and LimitClass).
enum class Side { kSource, kDest };
enum class Limit { kStorage, kLive };
struct SlotNeed {
  Side side = Side::kSource;
  Limit limit = Limit::kStorage;
  bool operator==(const SlotNeed&) const = default;
};

// A job as its kind sees it: what the job store keeps of it.
struct JobRecord {
  std::int64_t id = 0;
  std::string vm;
  std::string source_host;
  std::string dest_host;
  std::string params;  // JSON text, as the kind's *_params() wrote it
  std::string state;   // JSON text the job saved last (JobContext::save_state); "" or "{}": none
  // Whether the job saved any state (it changed something, or copied some).
  bool has_state() const { return !state.empty() && state != "{}"; }
};

using RunFn = std::function<Result(const JobRecord& job, JobEnv& env, JobContext& ctx)>;

struct JobKind {
  Kind id = Kind::kLiveStorage;
  std::vector<std::string> steps;  // the job's steps, in order (the store keeps them by index)
  std::vector<SlotNeed> slots;     // what a job holds while it runs
  // Runs a job that just started (or resumes one, with the state it saved).
  RunFn run;
  // Finishes or undoes a job whose process died, or whose run threw, from
  // the state it saved. Empty for a kind that resumes instead.
  RunFn recover;
  // A kind whose failed jobs continue where they stopped (`vmshift jobs
  // resume`): nothing to undo when its process dies.
  struct Resume {
    std::string_view continues;  // what resume continues: "copy", "migration"
    // How far a job got, from its saved state: "3 of 8 chunks".
    std::function<std::string(const std::string& state)> done_so_far;
  };
  std::optional<Resume> resume;
  // The VM's files for a message that cannot count on the job store to
  // tell: "vda '/b/a.qcow2'", where they are before the switch-over
  // (moved: after it). job.state is the state last reported. May throw
  // Error (then no file is named). Empty: the kind names none.
  std::function<std::vector<std::string>(const JobRecord& job, bool moved)> files;
  // The memory transfer rate (bytes/s) a completed job measured, from its
  // saved state, if it kept one. Empty for kinds that move no memory over
  // the link.
  std::function<std::optional<double>(const std::string& state)> memory_rate;

  bool resumable() const { return resume.has_value(); }
  std::string_view name() const { return kind_name(id); }
};

// The registry: the JobKind of each kind.
const JobKind& job_kind(Kind kind);
// The JobKind with that name (a job's type), or nullptr.
const JobKind* find_job_kind(std::string_view name);

}  // namespace vmshift::migrate

// A Kind in saved JSON is its name.
template <>
struct vmshift::codec::Names<vmshift::migrate::Kind> {
  static std::string_view name(migrate::Kind k) { return migrate::kind_name(k); }
  static std::optional<migrate::Kind> find(std::string_view s) { return migrate::find_kind(s); }
};
