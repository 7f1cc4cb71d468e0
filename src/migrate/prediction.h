// How long a migration will take and how long the guest will pause, from
// what can be measured before it starts: the bytes to copy, the guest's
// RAM and dirty rate, and the link rate.
//
// Pre-copy live migration (QEMU): the first pass sends all of RAM while the
// guest runs; each later pass sends what the guest dirtied during the pass
// before. When what is left can be sent within the downtime limit, QEMU
// pauses the guest, sends it with the device state, and the guest resumes
// on the destination. With disks to copy (live VSM), the disks are mirrored
// first, and the memory passes start once they are in sync.
//
//   pass 0:  R bytes              takes t0 = R / B
//   pass i:  D * t(i-1) bytes     takes ti = D * t(i-1) / B      (D: dirty rate, B: link rate)
//   stop when D * t(i-1) / B <= downtime limit; pause = that + switch overhead
//
// It converges only if D < B; if not, the prediction says so (the migration
// would need auto-converge, post-copy or a higher bandwidth).
//
// QSM and quick migrations pause the guest while its state is saved, moved
// and restored (predict_quick); a network migration copies the disks of a
// VM that is off the whole time (predict_network). predict() picks the
// model of a transfer type: every prediction vmshift makes is made here.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "migrate/kind.h"

namespace vmshift::migrate {

struct LiveInput {
  std::uint64_t ram_bytes = 0;
  std::uint64_t disk_bytes = 0;       // allocated data the migration copies (live VSM); 0 for live
  double dirty_bytes_per_s = 0;       // guest's memory dirty rate
  double disk_write_bytes_per_s = 0;  // guest's disk write rate, mirrored while disks copy
  double link_bytes_per_s = 0;        // usable rate between the hosts (or --bandwidth)
  std::chrono::milliseconds max_downtime{300};
};

struct Prediction {
  std::chrono::milliseconds total{0};  // from start to the guest running on the destination
  std::chrono::milliseconds pause{0};  // the guest's pause at the switch
  std::chrono::milliseconds disk_time{0};
  std::chrono::milliseconds memory_time{0};
  int passes = 0;         // memory passes, the first full one included
  bool converges = true;  // false: the dirty rate outruns the link
  std::string explain() const;
};

// Fixed costs measured in the lab (libvirt 9.0, QEMU 7.2 under TCG, see
// docs/live-migration.md): the set-up of a peer-to-peer migration
// (connections, the destination's QEMU start) and the switch itself
// (device state, stopping and starting the vCPUs, libvirt's resume).
inline constexpr std::chrono::milliseconds kMigrationSetup{1100};
inline constexpr std::chrono::milliseconds kSwitchOverhead{150};

Prediction predict_live(const LiveInput& in);

// The pause a QSM or quick migration will take, and its total time.
struct QuickInput {
  std::uint64_t ram_bytes = 0;
  std::uint64_t disk_bytes = 0;       // bases to copy while the VM runs
  double disk_write_bytes_per_s = 0;  // how fast the overlays grow meanwhile
  double link_bytes_per_s = 0;        // while the VM runs (--bandwidth applies)
  double pause_link_bytes_per_s = 0;  // during the pause (never limited); 0: as above
  bool other_host = true;             // overlays and state travel
  bool copies = true;                 // false: quick migration (shared storage)
};
Prediction predict_quick(const QuickInput& in);

// A network migration: the disks copied at the link rate, the VM off
// throughout (its outage is the whole move).
Prediction predict_network(std::uint64_t disk_bytes, double link_bytes_per_s);

// The rate a transfer gets: the link's, or the --bandwidth limit when lower
// (bandwidth 0: no limit).
double limited_rate(double link_bytes_per_s, std::uint64_t bandwidth);

// What a planned transfer of any type moves.
struct TransferInput {
  Kind type = Kind::kLive;  // live, live-vsm, qsm, quick or network
  std::uint64_t ram_bytes = 0;
  std::uint64_t disk_bytes = 0;  // allocated data the transfer copies
  double dirty_bytes_per_s = 0;
  double disk_write_bytes_per_s = 0;
  double link_bytes_per_s = 0;                // the link's rate (measured or assumed)
  std::uint64_t bandwidth = 0;                // --bandwidth, bytes/s (0: no limit)
  std::chrono::milliseconds max_downtime{0};  // 0: QEMU's default (LiveInput's)
  bool other_host = true;                     // the VM changes host
};
// The prediction of the type's model: predict_quick for qsm and quick,
// predict_network for network, predict_live for the live types.
Prediction predict(const TransferInput& in);

}  // namespace vmshift::migrate
