// The hosts, guests and files a job acts on, opened by inventory name:
// core's side of migrate::JobEnv, and the helpers the CLI shares with it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/job_store.h"
#include "guest/guest.h"
#include "hosts/inventory.h"
#include "migrate/job_env.h"
#include "migrate/live_storage.h"
#include "transfer/copy_engine.h"

namespace vmshift::core {

// Where a job's guest is (migrate/live_storage.h).
using GuestSpec = migrate::GuestSpec;

std::unique_ptr<guest::Guest> open_guest(const GuestSpec& spec, const hosts::Inventory& inventory);

// For move-storage --force: the files the defined VMs of every inventory
// host that sees a destination use (path -> who); empty without --force
// or for a bare QEMU guest (no inventory host to ask). Throws when a host
// cannot be asked.
std::map<std::string, std::string> move_storage_in_use(const hosts::Inventory& inventory,
                                                       const GuestSpec& spec,
                                                       const migrate::LiveStorageOptions& options);

// The per-host limits of the inventory (2 for a host it does not list).
LimitFn limits_from(const hosts::Inventory& inventory);

// Compares a file on one host with one on another (or the same), chunk
// by chunk: the result of transfer::verify, and the two files' names.
struct Comparison {
  transfer::VerifyResult result;
  std::string a, b;
  std::uint64_t chunk_size = 0;
};
Comparison compare_files(const hosts::Inventory& inventory, const std::string& host_a,
                         const std::string& path_a, const std::string& host_b,
                         const std::string& path_b, std::uint64_t chunk_size);

// migrate::JobEnv on the inventory: libvirt hosts (their files through
// volume streams), guests, files in use, and the checks of preflight and
// plan_live_storage.
class InventoryHosts : public migrate::JobEnv {
 public:
  explicit InventoryHosts(const hosts::Inventory& inventory) : inv_(inventory) {}
  std::unique_ptr<migrate::OpenSite> open_site(const std::string& host) override;
  std::unique_ptr<guest::Guest> open_guest(const GuestSpec& spec) override;
  std::map<std::string, std::string> files_in_use(const std::string& host,
                                                  const std::string& path) override;
  migrate::LiveStoragePlan plan_storage_move(guest::Guest& guest, const GuestSpec& spec,
                                             const migrate::LiveStorageOptions& options) override;
  migrate::Recheck check_migration(const std::string& vm, const std::string& source_host,
                                   const migrate::LiveMigrationOptions& options) override;

 private:
  const hosts::Inventory& inv_;
};

}  // namespace vmshift::core
