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
