// The planner: which transfer type moves a VM to a host, and every
// preflight check with its result, before anything changes (SCVMM's
// migration type choice and "rating"). Pure rules over Facts that
// core/preflight gathers from the hosts: the planner does no I/O, so each
// rule is unit-tested on facts alone.
//
//   running or paused VM, every disk on storage the destination shares -> live
//   running or paused VM, some disk on local storage (or disks asked to
//   move with --storage / --disk)                                       -> live-vsm
//   shut-off VM                                                         -> network
//
// A plan is made in three steps:
//   1. preflight gathers the Facts of the VM, the destination and the link;
//   2. files_to_probe(facts) says which files and directories the plan
//      depends on; preflight probes them on each host into
//      facts.source_files and facts.dest_files (a probe that fails keeps its
//      error, and the check that needs it fails with "cannot check: ...");
//   3. plan_migration(facts): lay_out (the type, where each disk goes),
//      then each check_* in turn, then the prediction.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "guest/guest.h"
#include "hosts/domain.h"
#include "hosts/inventory.h"
#include "migrate/kind.h"
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

// What a host's storage said about a path. error: the probe failed (or was
// not made): the check that needs it cannot pass.
struct FileProbe {
  bool exists = false;
  std::string error;
};
struct DirProbe {
  std::optional<std::uint64_t> free_bytes;  // nullopt: the host cannot tell
  std::string error;                        // the directory is not there, or cannot be reached
};
struct SameFileProbe {
  bool same = false;
  std::string error;
};
struct IdentityProbe {
  std::optional<hosts::FileIdentity> identity;
  std::string error;
};

// The probes of one host's files; a lookup of a probe that was not made
// answers with an error.
struct FileFacts {
  std::map<std::string, FileProbe> files;                             // exists()
  std::map<std::string, DirProbe> dirs;                               // free_bytes()
  std::map<std::pair<std::string, std::string>, SameFileProbe> same;  // same_file(a, b)
  std::map<std::string, IdentityProbe> identities;                    // identity()
  FileProbe file(const std::string& path) const;
  DirProbe dir(const std::string& dir) const;
  SameFileProbe same_file(const std::string& a, const std::string& b) const;
  IdentityProbe identity(const std::string& path) const;
};

// Which probes a plan needs on one host.
struct ProbeList {
  std::set<std::string> files;
  std::set<std::string> dirs;
  // same_file(a, b) and identity(b) are asked only when b exists.
  std::set<std::pair<std::string, std::string>> same;
  std::set<std::string> identities;
};
struct Probes {
  ProbeList source;
  ProbeList dest;
};

// Everything the planner decides from.
struct Facts {
  PlanRequest request;
  GuestView guest;
  DestView dest;
  LinkRate link;
  hosts::Inventory inventory;
  FileFacts source_files;  // probed on the source host
  FileFacts dest_files;    // probed on the destination host
};

// The transfer type and where each disk goes, decided from the facts
// before any check: what the checks look at. lay_out reads no probe, so
// files_to_probe (before the probes) and plan_migration (after) see the
// same layout.
struct Layout {
  migrate::Kind type = migrate::Kind::kLive;  // one of transfer_kinds()
  std::string why;
  std::vector<Check> type_checks;  // "state" and "type" refusals of the choice
  bool running = false;            // running or paused
  bool moving = false;             // --storage or --disk asks the disks to move
  bool same_host = false;          // the destination is the VM's own host
  bool top_only = false;           // each copy takes the disk's own file (its chain stays)
  std::vector<std::string> local;  // disks the destination does not see: "vda (on x)"
  std::optional<hosts::StorageConfig> into;   // --storage's location
  std::vector<migrate::DiskMove> copies;      // disks copied
  std::map<std::string, std::string> shared;  // disks that stay: target -> path
  // The VM's own files (each disk's file and backing chain) the destination
  // sees: a copy must never land on one.
  std::vector<std::string> own_seen;
};
Layout lay_out(const Facts& facts);

// Where each copy lands, from the destination's probes: what the disks,
// replace and space checks report.
struct CopyTargets {
  std::vector<migrate::DiskMove> copies;  // the layout's, with replace_existing decided
  std::vector<std::string> exist, no_dir, itself, in_use, replaced, unknown;
  std::map<std::string, std::uint64_t> need_per_dir;              // the saved state included
  std::map<std::string, std::vector<std::string>> disks_per_dir;  // what needs it
};
CopyTargets assess_copies(const Facts& facts, const Layout& layout);

// A file QSM or quick migration makes that must not be there already.
struct MadeFile {
  bool on_source = false;
  std::string path;
};
std::vector<MadeFile> files_made(const Facts& facts, const Layout& layout);

// The probes plan_migration needs (none when the destination is unreachable).
Probes files_to_probe(const Facts& facts);

struct MigrationPlan {
  migrate::Kind type = migrate::Kind::kLive;  // one of transfer_kinds()
  std::string why;
  std::vector<Check> checks;
  migrate::LiveMigrationPlan live;  // what a live or live-vsm job runs
  LinkRate link;
  std::vector<std::string> notes;
  bool ok() const;
  std::vector<std::string> failures() const;  // "name: reason" of each failed check
};

// The kinds `vmshift migrate` plans and runs (live, live-vsm, quick, qsm,
// network), and whether a kind is one of them.
const std::vector<migrate::Kind>& transfer_kinds();
bool transfer_kind(migrate::Kind kind);

MigrationPlan plan_migration(const Facts& facts);

// The checks, in the order plan_migration makes them, each over the facts
// (and the layout): pass, warn or fail with a reason, or no check at all
// when it does not apply. Named after the check each reports.
std::vector<Check> check_type(const Facts& facts, const Layout& layout);  // state, type
// The destination answers and is not the VM's own host (unless only its
// disks move there); when it fails, the plan has no other check.
std::vector<Check> check_destination(const Facts& facts, const Layout& layout);
std::vector<Check> check_name(const Facts& facts, const Layout& layout);
std::vector<Check> check_cpu(const Facts& facts, const Layout& layout);  // the check_cpu below
std::vector<Check> check_machine(const Facts& facts, const Layout& layout);
std::vector<Check> check_memory(const Facts& facts, const Layout& layout);
std::vector<Check> check_tcg(const Facts& facts, const Layout& layout);  // refused options
std::vector<Check> check_postcopy(const Facts& facts, const Layout& layout);
std::vector<Check> check_compress(const Facts& facts, const Layout& layout);
std::vector<Check> check_bandwidth(const Facts& facts, const Layout& layout);
std::vector<Check> check_devices(const Facts& facts, const Layout& layout);
std::vector<Check> check_networks(const Facts& facts, const Layout& layout);
std::vector<Check> check_firmware(const Facts& facts, const Layout& layout);
std::vector<Check> check_files(const Facts& facts, const Layout& layout);
// --storage and --disk: a known location the destination sees, known
// disks, absolute paths (storage, disks).
std::vector<Check> check_requested(const Facts& facts, const Layout& layout);
std::vector<Check> check_cache(const Facts& facts, const Layout& layout);
// The shared disks are there on the destination (storage).
std::vector<Check> check_shared_disks(const Facts& facts, const Layout& layout);
std::vector<Check> check_leftovers(const Facts& facts, const Layout& layout);
// A quick migration's state needs shared storage (storage).
std::vector<Check> check_saved_state(const Facts& facts, const Layout& layout);
std::vector<Check> check_backing(const Facts& facts, const Layout& layout);
std::vector<Check> check_disks(const Facts& facts, const Layout& layout,
                               const CopyTargets& targets);
std::vector<Check> check_replace(const Facts& facts, const Layout& layout,
                                 const CopyTargets& targets);
std::vector<Check> check_space(const Facts& facts, const Layout& layout,
                               const CopyTargets& targets);
// The prediction of the plan's transfer (migrate/prediction), and the
// warnings it brings: a guest that outruns the link; TCG's lost writes.
migrate::Prediction predict_plan(const Facts& facts, const Layout& layout,
                                 const std::vector<migrate::DiskMove>& copies);
std::vector<Check> check_convergence(const Facts& facts, const Layout& layout,
                                     const migrate::Prediction& prediction);
std::vector<Check> check_tcg_writes(const Facts& facts, const Layout& layout);

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
