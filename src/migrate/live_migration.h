// Live migration (SCVMM's live migration) and live VM-and-storage migration
// ("live VSM"): a running VM moves to another host with a pause of a few
// hundred milliseconds at most. With shared storage only memory and device
// state travel; with disks on local storage, the disks are copied first
// (the destination's QEMU serves NBD, the source mirrors into it) and
// memory follows. libvirt drives it peer to peer.
//
//   check -> prepare -> migrate (disks, then memory passes) -> verify -> cleanup
//            dest        switch-over at the end: the pause      the VM    source
//            images                                             runs on   files
//            created                                            the dest  deleted
//
// Until the switch-over the source stays authoritative: a failure or a
// cancel leaves the VM running on the source, unchanged, and removes what
// was made on the destination (images, a stray definition).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/json.h"
#include "hosts/migration.h"
#include "migrate/context.h"
#include "migrate/kind.h"
#include "migrate/live_storage.h"
#include "migrate/prediction.h"

namespace vmshift::migrate {

struct LiveMigrationOptions {
  std::string dest_host;
  std::optional<Kind> type;            // forced transfer type
  std::optional<std::string> storage;  // destination storage location for copied disks
  std::vector<std::pair<std::string, std::string>> disks;  // target -> path on the destination
  std::uint64_t bandwidth = 0;                             // bytes per second; 0 = unlimited
  std::string compress;                                    // "", "xbzrle", "zstd"
  int parallel = 0;                                        // multifd connections
  bool auto_converge = false;
  bool postcopy = false;
  std::chrono::milliseconds max_downtime{0};  // 0 = QEMU's default, 300 ms
  std::chrono::seconds timeout_per_gib{0};    // 0 = no overall timeout
  std::chrono::seconds progress_timeout{120};
  std::string timeout_action = "abort";  // abort | postcopy | suspend
  bool tls = false;
  bool keep_source = false;
  bool force = false;    // replace existing destination files
  bool shallow = false;  // copy only the top layer; the backing chain must be on the destination
  bool verify = false;   // qsm, network: compare each copy with its source before using it
  bool start = false;    // network: start the VM on the destination afterwards
};

// What the planner decided; what a job needs to run it.
struct LiveMigrationPlan {
  std::string vm;
  std::string source_host;
  std::string dest_host;
  std::string dest_peer_uri;                  // how the source's libvirtd reaches the destination's
  std::string migrate_uri;                    // "tcp://ADDRESS" or ""
  std::vector<DiskMove> copies;               // disks copied (live VSM)
  std::map<std::string, std::string> shared;  // disks that stay where they are: target -> path
  std::uint64_t memory_bytes = 0;
  double link_bytes_per_s = 0;  // the link rate the prediction assumed (0: unknown)
  Prediction prediction;
  bool copies_storage() const { return !copies.empty(); }
};

// What a live migration job saves for its recovery.
struct LiveMigrationState {
  std::string phase = "prepare";  // prepare, migrate, switched, done, undone
  std::string vm;
  bool keep_source = false;
  std::vector<DiskMove> copies;
  std::vector<Created> created;  // destination images this job created
  std::uint64_t memory_bps = 0;  // QEMU's memory transfer rate, once done
};

std::vector<std::string> live_migration_steps();

Result run_live_migration(hosts::MigrationHost& source, hosts::MigrationHost& dest,
                          const LiveMigrationPlan& plan, const LiveMigrationOptions& options,
                          JobContext& job);

// Finishes or undoes a job whose process died, from the state it saved.
// The migration itself may still be running in the source's libvirtd: it
// is waited for (bounded) first.
Result recover_live_migration(hosts::MigrationHost& source, hosts::MigrationHost& dest,
                              const std::string& saved_state, JobContext& job);

// A plan's prediction, as "predicted_total_ms" and "predicted_pause_ms".
void write_prediction(const LiveMigrationPlan& plan, Json& object);
void read_prediction(const Json& object, LiveMigrationPlan& plan, const std::string& path);

// The params of a migration job (live, live-vsm, qsm, quick, network):
// its plan and options; each kind's JobKind reads them back.
Json migration_params(const LiveMigrationPlan& plan, const LiveMigrationOptions& options);
struct MigrationParams {
  LiveMigrationOptions options;
  LiveMigrationPlan plan;
};
MigrationParams migration_params_from(const std::string& params);

// The files of a migration job's plan, for messages: "vda '/a.qcow2'",
// "vdb '/shared/b.qcow2' (shared)" (moved: where the copies go).
std::vector<std::string> plan_files(const std::string& params, bool moved);

// The request libvirt gets for a plan and options (tested on its own).
hosts::MigrationRequest migration_request(const LiveMigrationPlan& plan,
                                          const LiveMigrationOptions& options,
                                          const std::string& dest_xml,
                                          const std::string& persist_xml);

}  // namespace vmshift::migrate

template <>
struct vmshift::codec::Fields<vmshift::migrate::LiveMigrationOptions> {
  using T = migrate::LiveMigrationOptions;
  static constexpr auto list = std::tuple{field("dest_host", &T::dest_host),
                                          field("type", &T::type),
                                          field("storage", &T::storage),
                                          field("disks", &T::disks, pairs("target", "path")),
                                          field("bandwidth", &T::bandwidth),
                                          field("compress", &T::compress),
                                          field("parallel", &T::parallel),
                                          field("auto_converge", &T::auto_converge),
                                          field("postcopy", &T::postcopy),
                                          field("max_downtime_ms", &T::max_downtime),
                                          field("timeout_per_gib", &T::timeout_per_gib),
                                          field("progress_timeout", &T::progress_timeout),
                                          field("timeout_action", &T::timeout_action),
                                          field("tls", &T::tls),
                                          field("keep_source", &T::keep_source),
                                          field("force", &T::force),
                                          field("shallow", &T::shallow).or_default(),
                                          field("verify", &T::verify).or_default(),
                                          field("start", &T::start).or_default()};
};

// link_bytes_per_s and the prediction's details stay out: a job needs only these.
template <>
struct vmshift::codec::Fields<vmshift::migrate::LiveMigrationPlan> {
  using T = migrate::LiveMigrationPlan;
  static constexpr auto list =
      std::tuple{field("vm", &T::vm),
                 field("source_host", &T::source_host),
                 field("dest_host", &T::dest_host),
                 field("dest_peer_uri", &T::dest_peer_uri),
                 field("migrate_uri", &T::migrate_uri),
                 field("copies", &T::copies),
                 field("shared", &T::shared),
                 field("memory_bytes", &T::memory_bytes),
                 custom(&migrate::write_prediction, &migrate::read_prediction)};
};

template <>
struct vmshift::codec::Fields<vmshift::migrate::LiveMigrationState> {
  using T = migrate::LiveMigrationState;
  static constexpr auto list =
      std::tuple{field("phase", &T::phase),
                 field("vm", &T::vm),
                 field("keep_source", &T::keep_source),
                 field("copies", &T::copies),
                 field("created", &T::created, migrate::created_list).or_default(),
                 field("memory_bps", &T::memory_bps).or_default()};
};
