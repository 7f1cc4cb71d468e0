// Live storage migration (Hyper-V's Move-VMStorage, SCVMM's live storage
// migration): the disks of a running VM move to another location on the
// same host while it keeps running. A mirror job copies each disk and then
// keeps source and destination in sync; the pivot switches the guest to the
// destination; only then, after checking the guest uses the new files, are
// the source files deleted.
//
//   check -> copy (until every disk is in sync) -> pivot -> verify -> persist -> cleanup
//
// Until the pivot the source stays authoritative: a failure or a cancel
// before it ends every copy, removes the partial destination files, and
// leaves the VM on its original disks.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/json.h"
#include "guest/guest.h"
#include "migrate/context.h"
#include "migrate/created.h"

namespace vmshift::migrate {

struct LiveStorageOptions {
  std::optional<std::string> to_dir;  // every disk (or every disk named without a path) goes here
  std::vector<std::pair<std::string, std::string>> disks;  // target -> path ("" = to to_dir)
  std::uint64_t bandwidth = 0;                             // bytes per second, 0 = unlimited
  bool sync_writes = false;
  bool keep_source = false;
  bool force = false;    // replace an existing destination file (never one the VM uses)
  bool shallow = false;  // copy only the top layer; the backing chain stays where it is
  std::chrono::seconds progress_timeout{150};
};

struct DiskMove {
  std::string target;
  std::string source;
  std::string dest;
  std::string format;
  std::uint64_t capacity = 0;
  std::uint64_t need = 0;  // bytes the destination needs (allocated data copied)
  std::vector<std::string> backing;
  std::string backing_format;  // of backing.front()
  // --force: the plan found a file at dest that no defined VM uses and
  // that is no source of the move; it is replaced only if the file there
  // still has this identity when the job starts copying.
  bool replace_existing = false;
  std::optional<hosts::FileIdentity> replaces;
};

// The move of a disk to dest: its target, source, format, size and backing
// chain (need is left for the caller).
DiskMove move_of(const guest::DiskInfo& disk, const std::string& dest);

struct LiveStoragePlan {
  std::vector<DiskMove> moves;
  std::vector<std::string> notes;
};

// The checks, before anything changes. Throws vmshift::Error naming the
// disk and the problem (kNotFound, kAlreadyExists, kInvalidArgument,
// kFailedPrecondition). The facts are gathered from the guest first, then
// the plan is made from them alone (live_storage_plan.h).
// in_use: files that defined VMs use, path -> who ("VM 'b' on host
// 'host1'"), of every host that sees the destinations (core gathers it
// from the inventory); --force never replaces one of those.
LiveStoragePlan plan_live_storage(guest::Guest& guest, const LiveStorageOptions& options,
                                  const std::map<std::string, std::string>& in_use = {});

// Makes way for a copy into m.dest: nothing there, or (with force) the
// file the checks let --force replace, removed only while it is still
// that file. Throws Error(kAlreadyExists) for any other file, left in place.
void clear_destination(hosts::Storage& storage, const DiskMove& m, bool force);

std::vector<std::string> live_storage_steps();

Result run_live_storage(guest::Guest& guest, const LiveStoragePlan& plan,
                        const LiveStorageOptions& options, JobContext& job);

// What a live storage job saves for its recovery: the moves, and which
// disks were switched.
struct LiveStorageState {
  std::string phase = "copy";  // copy, pivot, done
  bool keep_source = false;
  std::vector<DiskMove> moves;
  std::set<std::string> pivoted;
  std::vector<Created> created;  // destination files this job's copies made
};

// Finishes or undoes a job whose process died, from the state it saved.
Result recover_live_storage(guest::Guest& guest, const std::string& saved_state, JobContext& job);

// A state's "disks": each move with "pivoted", whether it was switched.
void write_state_disks(const LiveStorageState& state, Json& object);
void read_state_disks(const Json& object, LiveStorageState& state, const std::string& path);

// Where a job's guest is: a libvirt VM on an inventory host, or a bare QEMU
// reached over its QMP socket.
struct GuestSpec {
  std::string kind;  // "libvirt" or "qmp"
  std::string host;  // libvirt: inventory host; qmp: "local"
  std::string vm;
  std::string socket;
};

// The params of a live-storage job (the JobKind is in live_storage.cc).
Json live_storage_params(const GuestSpec& spec, const LiveStorageOptions& options);

}  // namespace vmshift::migrate

template <>
struct vmshift::codec::Fields<vmshift::migrate::GuestSpec> {
  using T = migrate::GuestSpec;
  static constexpr auto list = std::tuple{field("kind", &T::kind), field("host", &T::host),
                                          field("vm", &T::vm), field("socket", &T::socket)};
};

// The job record: what a process needs to run the job.
template <>
struct vmshift::codec::Fields<vmshift::migrate::LiveStorageOptions> {
  using T = migrate::LiveStorageOptions;
  static constexpr auto list = std::tuple{field("to", &T::to_dir),
                                          field("disks", &T::disks, pairs("target", "path")),
                                          field("bandwidth", &T::bandwidth),
                                          field("sync_writes", &T::sync_writes),
                                          field("keep_source", &T::keep_source),
                                          field("force", &T::force),
                                          field("shallow", &T::shallow),
                                          field("progress_timeout", &T::progress_timeout)};
};

// A disk move in a job record; an older record has only target, source and dest.
template <>
struct vmshift::codec::Fields<vmshift::migrate::DiskMove> {
  using T = migrate::DiskMove;
  static constexpr auto list =
      std::tuple{field("target", &T::target),
                 field("source", &T::source),
                 field("dest", &T::dest),
                 field("format", &T::format).or_default(),
                 field("capacity", &T::capacity).or_default(),
                 field("need", &T::need).or_default(),
                 field("backing", &T::backing).or_default(),
                 field("backing_format", &T::backing_format).or_default(),
                 field("replace_existing", &T::replace_existing).or_default(),
                 field("replaces", &T::replaces).null_if_unset()};
};

template <>
struct vmshift::codec::Fields<vmshift::migrate::LiveStorageState> {
  using T = migrate::LiveStorageState;
  static constexpr auto list =
      std::tuple{field("phase", &T::phase), field("keep_source", &T::keep_source),
                 custom(&migrate::write_state_disks, &migrate::read_state_disks),
                 field("created", &T::created, migrate::created_list).or_default()};
};
