// Creating jobs: the params, steps and slots of each kind's new job.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/job_hosts.h"
#include "core/job_store.h"
#include "hosts/inventory.h"
#include "migrate/copy_files.h"
#include "migrate/kind.h"
#include "migrate/live_migration.h"
#include "migrate/live_storage.h"

namespace vmshift::core {

// Who the guest is, for one active job per VM (NewJob::vm_uuid): a libvirt
// domain's UUID, or "qmp:" and the real path of a bare QEMU's socket.
std::string guest_uuid(const GuestSpec& spec, const hosts::Inventory& inventory);

// These throw Error(kFailedPrecondition) naming the other job if the VM
// (vm_uuid) has an active job already.
std::int64_t create_live_storage_job(JobStore& store, const GuestSpec& spec,
                                     const std::string& vm_uuid,
                                     const migrate::LiveStorageOptions& options);
// A live or live-vsm job (or qsm, quick, network) from a plan whose checks
// passed; type is the plan's. Throws Error(kInvalidArgument) for a type
// that is no kind.
std::int64_t create_live_migration_job(JobStore& store, const std::string& type,
                                       const migrate::LiveMigrationPlan& plan,
                                       const std::string& vm_uuid,
                                       const migrate::LiveMigrationOptions& options);
std::int64_t create_copy_job(JobStore& store, const migrate::CopyJobOptions& options);

// The per-host slots a job of this kind holds while it runs.
std::vector<Slot> slots_for(const migrate::JobKind& kind, const std::string& source,
                            const std::string& dest);
// The same by the job's type; throws Error(kInvalidArgument) for a type
// that is no kind.
std::vector<Slot> slots_for(const std::string& type, const std::string& source,
                            const std::string& dest);

}  // namespace vmshift::core
