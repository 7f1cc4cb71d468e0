// A host as a migration between hosts sees it, and one running migration.
// LibvirtHost implements both on libvirt's API; unit tests use fakes.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/deadline.h"
#include "hosts/storage.h"

namespace vmshift::hosts {

struct MigrationRequest {
  // How the source host's libvirtd reaches the destination's (peer-to-peer).
  std::string dest_peer_uri;
  // Where the migration data goes: "tcp://ADDRESS", or "" for libvirt's choice.
  std::string migrate_uri;
  // Disks copied during the migration (NBD + mirror); the others are shared.
  std::vector<std::string> copy_disks;
  // Copy only their top layers: the destination's images sit on the same
  // backing chain, which it sees.
  bool copy_top_only = false;
  // The definition to start on the destination ("" keeps the source's),
  // e.g. with the copied disks' new paths; and the one to store there.
  std::string dest_xml;
  std::string persist_xml;
  std::uint64_t bandwidth = 0;  // bytes per second; 0 = unlimited
  std::string compression;      // "" none, "xbzrle", "zstd" (needs parallel)
  int parallel = 0;             // multifd connections; 0 = one stream
  bool auto_converge = false;
  bool postcopy = false;  // allow a switch to post-copy
  bool tls = false;
  // The disks not copied are on storage both hosts share, which vmshift's
  // inventory vouches for (libvirt trusts only file systems it recognises
  // as shared, such as NFS) and whose cache mode the planner checked.
  bool shared_storage_vouched = false;
  std::chrono::milliseconds max_downtime{0};  // 0: QEMU's default (300 ms)
};

struct MigrationStats {
  bool active = false;  // a migration job runs on the source
  std::uint64_t elapsed_ms = 0;
  std::uint64_t memory_total = 0, memory_processed = 0, memory_remaining = 0, memory_bps = 0;
  std::uint64_t disk_total = 0, disk_processed = 0, disk_remaining = 0, disk_bps = 0;
  std::uint64_t dirty_bytes_per_s = 0;  // the guest's memory dirty rate, as QEMU sees it
  std::uint64_t iteration = 0;          // memory passes so far
  std::uint64_t throttle_percent = 0;   // auto-converge CPU throttle
  bool postcopy = false;                // switched to post-copy
  // "disks" while the disks copy, then "memory"; "post-copy" after the switch.
  std::string phase() const;
};

struct CompletedMigration {
  std::optional<std::int64_t> downtime_ms;  // the guest's pause at the switch-over
  std::uint64_t elapsed_ms = 0;
  std::uint64_t data_total = 0;      // memory and disks
  std::uint64_t data_processed = 0;  // bytes sent
  std::uint64_t memory_bps = 0;      // memory transfer rate
  std::uint64_t iteration = 0;       // memory passes
};

// One migration of one VM, running in the background from start until it
// ends. Every call returns at once (they talk to the source's libvirtd).
class LiveMigration {
 public:
  virtual ~LiveMigration() = default;
  virtual MigrationStats stats() = 0;
  // nullopt while it runs; then "" when it succeeded, or why it failed.
  virtual std::optional<std::string> result() = 0;
  // Waits for the result until the deadline.
  virtual std::optional<std::string> wait(Deadline deadline) = 0;
  // Asks the source to cancel (effective before the switch-over).
  virtual void abort() = 0;
  virtual void switch_to_postcopy() = 0;
  // Pauses the guest on the source, so that the rest converges at once.
  virtual void suspend_source() = 0;
};

// A host that VMs move from and to.
// A VM state from MigrationHost::vm_state is up: running or paused (its
// memory lives in a QEMU).
inline bool running(const std::optional<std::string>& state) {
  return state && (*state == "running" || *state == "paused");
}

class MigrationHost {
 public:
  virtual ~MigrationHost() = default;
  virtual std::string name() const = 0;
  virtual Storage& storage() = 0;

  // The state of the VM of that name here ("running", "paused", "shut
  // off", ...), or nullopt when no VM of that name is defined here.
  virtual std::optional<std::string> vm_state(const std::string& vm) = 0;
  virtual bool vm_persistent(const std::string& vm) = 0;
  // target -> source file of each disk, live or (inactive) persistent.
  virtual std::map<std::string, std::string> vm_disks(const std::string& vm, bool persistent) = 0;
  // The definition, migratable (no host-specific parts), for rewriting:
  // the running one, or the persistent one.
  virtual std::string vm_xml(const std::string& vm, bool persistent) = 0;
  // Whether a migration (or another async job) of the VM runs here.
  virtual bool vm_job_active(const std::string& vm) = 0;
  // Asks the job of the VM here to cancel; false if it cannot be (e.g. a
  // migration in post-copy) or there is none.
  virtual bool abort_job(const std::string& vm) = 0;
  // The statistics of the last migration that ended here (the guest's
  // pause among them), if the host kept them.
  virtual std::optional<CompletedMigration> completed_migration(const std::string& vm) = 0;
  // Removes a VM that is not running: its definition only, no files (its
  // NVRAM and vTPM state are kept). Throws if it has a managed-save image
  // or snapshot metadata, which are not dropped silently.
  virtual void undefine(const std::string& vm) = 0;

  // Starts migrating a running VM of this host. Throws if it cannot start.
  virtual std::unique_ptr<LiveMigration> start_migration(const std::string& vm,
                                                         const MigrationRequest& request) = 0;

  // ---- what quick (storage) and network migrations do

  // External disk-only snapshot: each named disk (target -> new overlay
  // file) goes on writing to a new qcow2 overlay; its old file becomes the
  // read-only backing file. Atomic: all disks or none.
  virtual void snapshot_to_overlays(const std::string& vm,
                                    const std::map<std::string, std::string>& overlays) = 0;
  // Merges a disk's top layer into its backing file while the VM runs
  // (active block commit, then the switch to the backing file), waiting
  // until done or the deadline. The overlay file stays (delete it after).
  virtual void commit_top(const std::string& vm, const std::string& target, Deadline deadline) = 0;
  // Saves the running VM's state to a file on this host; the VM stops.
  virtual void save_state(const std::string& vm, const std::string& path) = 0;
  // The definition stored in a saved state file.
  virtual std::string saved_xml(const std::string& path) = 0;
  // Starts a VM from a saved state file with this definition (its disk
  // paths may differ from the saved one); running, or paused.
  virtual void restore_state(const std::string& path, const std::string& xml, bool paused) = 0;
  // Whether the VM has a managed-save image (virsh managedsave), and where.
  virtual std::optional<std::string> managed_save_path(const std::string& vm) = 0;
  // Stores the running or paused VM's state as its managed-save image; it stops.
  virtual void managed_save(const std::string& vm) = 0;
  // Defines (or redefines) a VM persistently from XML.
  virtual void define(const std::string& xml) = 0;
  virtual void start(const std::string& vm) = 0;
  // Stops a VM at once (no guest shutdown).
  virtual void destroy(const std::string& vm) = 0;
};

}  // namespace vmshift::hosts
