// A libvirt host as migrations between hosts see it. A migration is
// peer-to-peer: vmshift asks the source's libvirtd (virDomainMigrateToURI3
// with VIR_MIGRATE_PEER2PEER), which talks to the destination's libvirtd
// itself; vmshift only needs to reach the two hosts' libvirt.
#pragma once

#include <memory>
#include <string>

#include "hosts/libvirt.h"
#include "hosts/libvirt_storage.h"
#include "hosts/migration.h"

namespace vmshift::hosts {

class LibvirtHost : public MigrationHost {
 public:
  explicit LibvirtHost(Connection conn);

  std::string name() const override { return conn_.host(); }
  Storage& storage() override { return storage_; }
  std::optional<std::string> vm_state(const std::string& vm) override;
  bool vm_persistent(const std::string& vm) override;
  std::map<std::string, std::string> vm_disks(const std::string& vm, bool persistent) override;
  std::string vm_xml(const std::string& vm, bool persistent) override;
  bool vm_job_active(const std::string& vm) override;
  bool abort_job(const std::string& vm) override;
  std::optional<CompletedMigration> completed_migration(const std::string& vm) override;
  void undefine(const std::string& vm) override;
  std::unique_ptr<LiveMigration> start_migration(const std::string& vm,
                                                 const MigrationRequest& request) override;

  void snapshot_to_overlays(const std::string& vm,
                            const std::map<std::string, std::string>& overlays) override;
  void commit_top(const std::string& vm, const std::string& target, Deadline deadline) override;
  void save_state(const std::string& vm, const std::string& path) override;
  std::string saved_xml(const std::string& path) override;
  void restore_state(const std::string& path, const std::string& xml, bool paused) override;
  std::optional<std::string> managed_save_path(const std::string& vm) override;
  void managed_save(const std::string& vm) override;
  void define(const std::string& xml) override;
  void start(const std::string& vm) override;
  void destroy(const std::string& vm) override;

  const Connection& connection() const { return conn_; }
  LibvirtStorage& libvirt_storage() { return storage_; }

 private:
  Domain find(const std::string& vm);  // null if none

  Connection conn_;
  LibvirtStorage storage_;
};

// The libvirt flags and typed parameters of a request, for tests and logs:
// "name=value" lines in the order they are passed.
unsigned int migration_flags(const MigrationRequest& request);
std::vector<std::string> migration_params(const MigrationRequest& request);

// A migration bandwidth in bytes/s as the whole MiB/s libvirt takes
// (VIR_MIGRATE_PARAM_BANDWIDTH has no bytes flavour); throws
// Error(kInvalidArgument) for a rate that is not a whole number of MiB/s.
std::uint64_t migration_bandwidth_mib(std::uint64_t bytes_per_s);

}  // namespace vmshift::hosts
