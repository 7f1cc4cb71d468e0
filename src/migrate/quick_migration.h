// The transfer types built on saving a VM's state and on the copy engine:
//
// quick storage migration (qsm.cc, SCVMM's QSM) - a running VM's disks (and
// the VM, when the destination is another host) move while it runs; it
// pauses only to save its state and move what changed since the copy began:
//
//   snapshot   each disk gets a qcow2 overlay; the old file (the base) turns read-only
//   copy       the bases to the destination, while the VM runs (copy engine)
//   save       the VM's state to a file                       <- the pause begins
//   transfer   the overlays and the state file to the destination (another host only)
//   restore    on the destination: each overlay on its copied base  <- the pause ends
//   merge      each overlay into its base while the VM runs (active commit), overlays deleted
//   verify     the VM runs on the new files; defined there
//   cleanup    source files and (another host) the source definition removed
//
// quick migration (quick.cc) - shared storage: save the state to the shared
// storage, restore it on the destination host.
//
// network migration (network.cc) - a shut-off (or saved) VM: copy its disks
// (and saved state), define it on the destination, verify the copies,
// remove it from the source; resumable.
//
// A failure before the save leaves the VM running on the source with its
// overlays merged back; a failure between the save and the restore restores
// it on the source; each says so.
#pragma once

#include <string>
#include <vector>

#include "migrate/copy_files.h"
#include "migrate/live_migration.h"

namespace vmshift::migrate {

// What a quick migration job saves for its recovery.
struct QuickState {
  std::string phase = "saving";  // saving, saved, restored, done, undone
  std::string vm;
  std::string state;  // on the shared storage
  // Read with its secrets (graphics passwords): in memory only, never in
  // the recovery data (a recovery restores from the state file's own).
  std::string saved_xml;
};

// What a network migration job saves; a resumed job continues from it.
struct NetworkState {
  std::string phase = "copy";  // copy, defined, done
  std::string vm;
  std::vector<FileCopy> files;
  std::string saved_src, saved_dst;  // managed-save state, if the VM was saved
};

// A disk of a quick storage migration.
struct QsmDisk {
  std::string target;
  std::string base;         // the disk's file on the source, the base after the snapshot
  std::string dest;         // the base's copy on the destination
  std::string format;       // of the base
  std::string overlay_src;  // the overlay on the source
  std::string overlay_dst;  // where the VM finds it on the destination
};

// What a quick storage migration job saves before each change, for its recovery.
struct QsmState {
  // snapshot, copy, saving, saved, restored, merged, done, undone
  std::string phase = "snapshot";
  std::string vm;
  bool other_host = true;
  bool keep_source = false;
  std::vector<QsmDisk> disks;
  std::string state_src, state_dst;
  // The definition in the saved state, read with its secrets (graphics
  // passwords): kept in memory only, never in the recovery data (a
  // recovery restores on the source from the state file's own).
  std::string saved_xml;
  std::vector<FileCopy> bases, rest;
  std::int64_t pause_start_ms = 0;
  std::int64_t predicted_pause_ms = 0;
  // Files this job made (overlays, copies, saved states): the only ones it
  // deletes, and only while they are still those files.
  std::vector<Created> created;
};

std::vector<std::string> qsm_steps();
Result run_qsm(Site& source, Site& dest, const LiveMigrationPlan& plan,
               const LiveMigrationOptions& options, JobContext& job);
Result recover_qsm(Site& source, Site& dest, const std::string& saved_state, JobContext& job);

std::vector<std::string> quick_steps();
Result run_quick(Site& source, Site& dest, const LiveMigrationPlan& plan,
                 const LiveMigrationOptions& options, JobContext& job);
Result recover_quick(Site& source, Site& dest, const std::string& saved_state, JobContext& job);

std::vector<std::string> network_steps();
// Runs, or with saved_state from an earlier run resumes, a network migration.
Result run_network(Site& source, Site& dest, const LiveMigrationPlan& plan,
                   const LiveMigrationOptions& options, const std::string& saved_state,
                   JobContext& job);

// Where QSM keeps a disk's overlay: next to the file it sits on.
std::string overlay_path(const std::string& disk);
// Where a saved state goes: in the directory of a disk of the VM.
std::string state_path(const std::string& dir, const std::string& vm);

}  // namespace vmshift::migrate

template <>
struct vmshift::codec::Fields<vmshift::migrate::QuickState> {
  using T = migrate::QuickState;
  static constexpr auto list =
      std::tuple{field("phase", &T::phase), field("vm", &T::vm), field("state", &T::state)};
};

template <>
struct vmshift::codec::Fields<vmshift::migrate::NetworkState> {
  using T = migrate::NetworkState;
  static constexpr auto list =
      std::tuple{field("phase", &T::phase), field("vm", &T::vm), field("files", &T::files),
                 field("saved_src", &T::saved_src), field("saved_dst", &T::saved_dst)};
};

template <>
struct vmshift::codec::Fields<vmshift::migrate::QsmDisk> {
  using T = migrate::QsmDisk;
  static constexpr auto list = std::tuple{field("target", &T::target),
                                          field("base", &T::base),
                                          field("dest", &T::dest),
                                          field("format", &T::format),
                                          field("overlay_src", &T::overlay_src),
                                          field("overlay_dst", &T::overlay_dst)};
};

template <>
struct vmshift::codec::Fields<vmshift::migrate::QsmState> {
  using T = migrate::QsmState;
  static constexpr auto list =
      std::tuple{field("phase", &T::phase),
                 field("vm", &T::vm),
                 field("other_host", &T::other_host),
                 field("keep_source", &T::keep_source),
                 field("disks", &T::disks),
                 field("state_src", &T::state_src),
                 field("state_dst", &T::state_dst),
                 field("bases", &T::bases),
                 field("rest", &T::rest),
                 field("pause_start_ms", &T::pause_start_ms),
                 field("predicted_pause_ms", &T::predicted_pause_ms),
                 field("created", &T::created, migrate::created_list).or_default()};
};
