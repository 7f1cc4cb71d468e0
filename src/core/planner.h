// The planner: which transfer type moves a VM to a host, and every
// preflight check with its result, before anything changes (SCVMM's
// migration type choice and "rating"). Pure rules over facts that
// core/preflight gathers from the hosts, so each rule is unit-tested.
//
//   running or paused VM, every disk on storage the destination shares -> live
//   running or paused VM, some disk on local storage (or disks asked to
//   move with --storage / --disk)                                       -> live-vsm
//   shut-off VM                                                         -> network
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "guest/guest.h"
#include "hosts/domain.h"
#include "hosts/inventory.h"
#include "migrate/live_migration.h"

namespace vmshift::core {

enum class CheckStatus { kPass, kWarn, kFail };
std::string_view to_string(CheckStatus s) noexcept;

struct Check {
  std::string name;
  CheckStatus status = CheckStatus::kPass;
  std::string reason;
};

// A disk of the VM, on the source host.
struct PlanDisk {
  guest::DiskInfo info;
  std::uint64_t chain_allocation = 0;            // allocated bytes of its backing chain
  std::optional<hosts::StorageConfig> location;  // the inventory location holding it
};

struct GuestView {
  hosts::DomainFacts domain;
  std::string state;  // "running", "paused", "shut off", ...
  std::vector<PlanDisk> disks;
  std::optional<double> dirty_bytes_per_s;  // measured by libvirt's dirty-rate calculation
  std::optional<double> disk_write_bytes_per_s;
  std::string measure_note;                  // why a rate is missing
  unsigned long source_libvirt_version = 0;  // 9000000 for 9.0.0
  hosts::Storage* source_storage = nullptr;  // probes the source's files
};

struct DestView {
  std::string host;
  std::string peer_uri;     // how the source's libvirtd reaches it
  std::string migrate_uri;  // "tcp://ADDRESS" or ""
  std::string error;        // unreachable when not empty
  std::uint64_t free_memory = 0;
  std::vector<std::string> domain_names;
  std::vector<std::string> domain_uuids;
  std::vector<std::pair<std::string, bool>> networks;  // name, active
  std::optional<std::vector<std::string>> interfaces;  // nullopt: unknown
  std::string domcaps_error;  // the destination cannot run this emulator/machine
  std::string domcaps_xml;
  std::optional<std::string> cpu_incompatible;  // libvirt's verdict; "" = compatible
  hosts::Storage* storage = nullptr;            // probes the destination's files
  // With --force: the files that defined VMs use on every host that sees
  // the destination's storage, path -> who ("VM 'b' on host 'host1'"); and
  // why that could not be found out ("" = it was).
  std::map<std::string, std::string> in_use;
  std::string in_use_error;
};

struct LinkRate {
  double bytes_per_s = 0;
  std::string basis;  // "configured", "measured by job 12", "assumed"
};

struct PlanRequest {
  std::string vm;
  std::string source_host;
  migrate::LiveMigrationOptions options;  // dest_host, type, storage, disks, ...
};

struct MigrationPlan {
  std::string type;  // "live", "live-vsm", "network", "quick", "qsm"
  std::string why;
  std::vector<Check> checks;
  migrate::LiveMigrationPlan live;  // what a live or live-vsm job runs
  LinkRate link;
  std::vector<std::string> notes;
  bool ok() const;
  std::vector<std::string> failures() const;  // "name: reason" of each failed check
};

// The types vmshift knows; runnable_types() those `vmshift migrate` runs.
const std::vector<std::string>& transfer_types();
bool runnable_type(std::string_view type);

MigrationPlan plan_migration(const PlanRequest& request, const GuestView& guest,
                             const DestView& dest, const hosts::Inventory& inventory,
                             const LinkRate& link);

// How good a destination is (SCVMM's host rating): 0 stars when a check
// fails, else 5, less one for each warning, for little memory left after
// the move (under 512 MiB or a quarter of what is free now), and for a slow predicted move (more
// than twice the fastest destination's, given as fastest_ms; 0 = unknown). The reason says why.
struct Rating {
  int stars = 0;
  std::string reason;
};
Rating rate_plan(const MigrationPlan& plan, const DestView& dest, std::uint64_t memory_bytes,
                 std::int64_t fastest_ms);

// The CPU check alone, from the destination's domain capabilities (and
// libvirt's comparison when known): pass, warn or fail with a reason.
Check check_cpu(const hosts::DomainFacts& domain, const DestView& dest);

}  // namespace vmshift::core
