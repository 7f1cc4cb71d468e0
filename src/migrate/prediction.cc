#include "migrate/prediction.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

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
