#include "migrate/prediction.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "base/format.h"

namespace vmshift::migrate {
namespace {

using std::chrono::milliseconds;

milliseconds ms(double seconds) {
  return milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000)));
}

constexpr int kMaxPasses = 30;  // QEMU keeps iterating; we stop predicting

}  // namespace

Prediction predict_live(const LiveInput& in) {
  Prediction p;
  double link = in.link_bytes_per_s;
  if (link <= 0) link = 1;  // no rate known: a caller bug, but never divide by zero
  double limit_s = static_cast<double>(in.max_downtime.count()) / 1000.0;

  // Disks first: the mirror sends the allocated data plus what the guest
  // writes meanwhile, which shares the link.
  double disk_s = 0;
  if (in.disk_bytes > 0) {
    double net = link - in.disk_write_bytes_per_s;
    if (net <= 0) {
      p.converges = false;
      net = link / 10;
    }
    disk_s = static_cast<double>(in.disk_bytes) / net;
  }

  double ram = static_cast<double>(in.ram_bytes);
  double dirty = std::max(0.0, in.dirty_bytes_per_s);
  double pass_s = ram / link;
  double mem_s = pass_s;
  p.passes = 1;
  double left = std::min(ram, dirty * pass_s);
  while (left / link > limit_s) {
    if (p.passes >= kMaxPasses || dirty >= link) {
      p.converges = false;
      break;
    }
    pass_s = left / link;
    mem_s += pass_s;
    ++p.passes;
    left = std::min(ram, dirty * pass_s);
  }
  // QEMU never pauses longer than the limit: a migration that does not
  // converge goes on passing (or needs auto-converge, post-copy or a pause).
  double pause_s = p.converges ? left / link : limit_s;
  p.disk_time = ms(disk_s);
  p.memory_time = ms(mem_s);
  p.pause = ms(pause_s) + kSwitchOverhead;
  p.total = kMigrationSetup + p.disk_time + p.memory_time + p.pause;
  return p;
}

Prediction predict_quick(const QuickInput& in) {
  // Measured in the lab (libvirt 9.0, QEMU 7.2, TCG, docs/qsm.md): saving
  // and restoring a guest's state run at about these rates, and a restore
  // starts a QEMU first.
  // (192 MiB guest: save 1.86-1.91 s, restore 0.31 s.)
  constexpr double kSaveRate = 105e6;     // bytes of RAM per second
  constexpr double kRestoreRate = 1.5e9;  // bytes of RAM per second
  constexpr double kRestoreStart = 0.15;  // seconds
  double link = in.link_bytes_per_s > 0 ? in.link_bytes_per_s : 1;
  double pause_link = in.pause_link_bytes_per_s > 0 ? in.pause_link_bytes_per_s : link;
  double ram = static_cast<double>(in.ram_bytes);
  double base_s = in.copies ? static_cast<double>(in.disk_bytes) / link : 0;
  double overlay = in.disk_write_bytes_per_s * base_s;
  double pause = ram / kSaveRate + ram / kRestoreRate + kRestoreStart;
  if (in.other_host && in.copies) pause += (overlay + ram) / pause_link;
  Prediction p;
  auto to_ms = [](double s) { return milliseconds(static_cast<std::int64_t>(s * 1000)); };
  p.disk_time = to_ms(base_s);
  p.pause = to_ms(pause);
  p.memory_time = to_ms(0);
  p.total = to_ms(base_s + pause) + kMigrationSetup;
  return p;
}

Prediction predict_network(std::uint64_t disk_bytes, double link_bytes_per_s) {
  Prediction p;
  p.disk_time = milliseconds(static_cast<std::int64_t>(1000.0 * static_cast<double>(disk_bytes) /
                                                       std::max(link_bytes_per_s, 1.0)));
  // The VM is off the whole time: its outage is the whole move.
  p.total = p.disk_time + kMigrationSetup;
  p.pause = p.total;
  return p;
}

double limited_rate(double link_bytes_per_s, std::uint64_t bandwidth) {
  return bandwidth > 0 ? std::min(link_bytes_per_s, static_cast<double>(bandwidth))
                       : link_bytes_per_s;
}

Prediction predict(const TransferInput& in) {
  double rate = limited_rate(in.link_bytes_per_s, in.bandwidth);
  if (in.type == Kind::kQsm || in.type == Kind::kQuick) {
    QuickInput q;
    q.ram_bytes = in.ram_bytes;
    q.disk_bytes = in.disk_bytes;
    q.disk_write_bytes_per_s = in.disk_write_bytes_per_s;
    q.link_bytes_per_s = rate;
    q.pause_link_bytes_per_s = in.link_bytes_per_s;
    q.other_host = in.other_host;
    q.copies = in.type == Kind::kQsm;
    return predict_quick(q);
  }
  if (in.type == Kind::kNetwork) return predict_network(in.disk_bytes, rate);
  LiveInput l;
  l.ram_bytes = in.ram_bytes;
  l.disk_bytes = in.disk_bytes;
  l.dirty_bytes_per_s = in.dirty_bytes_per_s;
  l.disk_write_bytes_per_s = in.disk_write_bytes_per_s;
  l.link_bytes_per_s = rate;
  if (in.max_downtime.count() > 0) l.max_downtime = in.max_downtime;
  return predict_live(l);
}

std::string Prediction::explain() const {
  auto secs = [](milliseconds m) { return static_cast<double>(m.count()) / 1000.0; };
  std::string s = fmt::format("about {:.1f} s in all", secs(total));
  if (disk_time.count() > 0)
    s += fmt::format(" ({:.1f} s disks, ", secs(disk_time));
  else
    s += " (";
  s += fmt::format("{:.1f} s memory in {} pass{}), pause about {} ms", secs(memory_time), passes,
                   passes == 1 ? "" : "es", pause.count());
  if (!converges)
    s += "; but the guest dirties memory about as fast as the link carries it: it would not "
         "converge without --auto-converge, --timeout-action suspend or more bandwidth (the "
         "times are those of the passes before giving up)";
  return s;
}

}  // namespace vmshift::migrate
