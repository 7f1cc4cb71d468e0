// Every prediction vmshift makes (migrate/prediction): the pre-copy
// arithmetic of live migrations, the pause of QSM and quick migrations,
// network migrations, and which model a transfer type gets.
#include "migrate/prediction.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace vmshift::migrate {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Test the pre-copy arithmetic: one pass for an idle guest, more passes
// for a dirtying one, disks first for a live VSM, no convergence when the
// guest dirties faster than the link.
TEST(Prediction, PreCopyArithmetic) {
  LiveInput in;
  in.ram_bytes = 1000 * 1000 * 1000;  // 1 GB
  in.link_bytes_per_s = 100e6;        // 100 MB/s: 10 s a pass
  Prediction idle = predict_live(in);
  EXPECT_EQ(idle.passes, 1);
  EXPECT_EQ(idle.memory_time, 10s);
  EXPECT_EQ(idle.pause, kSwitchOverhead);
  EXPECT_EQ(idle.total, kMigrationSetup + 10s + kSwitchOverhead);

  in.dirty_bytes_per_s = 10e6;  // pass 2: 100 MB (1 s), pass 3: 10 MB (0.1 s < 0.3 s): stop
  Prediction busy = predict_live(in);
  EXPECT_EQ(busy.passes, 2);
  EXPECT_EQ(busy.memory_time, 11s);
  EXPECT_EQ(busy.pause, 100ms + kSwitchOverhead);
  EXPECT_TRUE(busy.converges);

  in.disk_bytes = 500 * 1000 * 1000;
  in.disk_write_bytes_per_s = 50e6;  // the mirror nets 50 MB/s: 10 s
  Prediction vsm = predict_live(in);
  EXPECT_EQ(vsm.disk_time, 10s);
  EXPECT_EQ(vsm.total, busy.total + 10s);

  in.disk_bytes = 0;
  in.dirty_bytes_per_s = 150e6;
  Prediction never = predict_live(in);
  EXPECT_FALSE(never.converges);
  EXPECT_EQ(never.pause, 300ms + kSwitchOverhead);
  EXPECT_THAT(never.explain(), HasSubstr("would not converge"));
  in.max_downtime = 50ms;
  in.dirty_bytes_per_s = 10e6;
  EXPECT_EQ(predict_live(in).passes, 3);  // 10 MB takes 100 ms > 50 ms
}

// Test the pause model: it grows with RAM and with what the overlays gather
// during the copy; only another host pays for the transfer; a --bandwidth
// limit slows the copy but not the transfer during the pause; a quick
// migration copies nothing before it.
TEST(PredictQuick, PauseModel) {
  QuickInput in{.ram_bytes = 256u << 20,
                .disk_bytes = 1u << 30,
                .disk_write_bytes_per_s = 1e6,
                .link_bytes_per_s = 100e6};
  Prediction base = predict_quick(in);
  EXPECT_GT(base.disk_time.count(), 10000);  // 1 GiB at 100 MB/s
  EXPECT_GT(base.total, base.disk_time + base.pause - std::chrono::milliseconds(1));

  QuickInput more_ram = in;
  more_ram.ram_bytes *= 2;
  EXPECT_GT(predict_quick(more_ram).pause, base.pause);

  QuickInput busier = in;
  busier.disk_write_bytes_per_s *= 10;
  EXPECT_GT(predict_quick(busier).pause, base.pause);

  QuickInput same_host = in;
  same_host.other_host = false;
  EXPECT_LT(predict_quick(same_host).pause, base.pause);

  QuickInput limited = in;
  limited.link_bytes_per_s = 10e6;  // --bandwidth 10 MB/s
  limited.pause_link_bytes_per_s = 100e6;
  Prediction l = predict_quick(limited);
  EXPECT_GT(l.disk_time, base.disk_time * 9);
  EXPECT_GT(l.pause, base.pause);  // more overlay gathered during the longer copy
  QuickInput limited_pause = limited;
  limited_pause.pause_link_bytes_per_s = 0;  // the pause at the limit too
  EXPECT_GT(predict_quick(limited_pause).pause, l.pause * 5);

  QuickInput quick = in;
  quick.copies = false;
  Prediction q = predict_quick(quick);
  EXPECT_EQ(q.disk_time.count(), 0);
  EXPECT_LT(q.pause, base.pause);
}

// Test that a network migration takes its disks' time at the link rate
// plus the set-up, all of it with the VM off, and never divides by zero.
TEST(PredictNetwork, TheVmIsOffThroughout) {
  Prediction p = predict_network(500 * 1000 * 1000, 100e6);
  EXPECT_EQ(p.disk_time, 5s);
  EXPECT_EQ(p.total, 5s + kMigrationSetup);
  EXPECT_EQ(p.pause, p.total);
  EXPECT_EQ(p.passes, 0);
  EXPECT_EQ(predict_network(1000, 0).disk_time, 1000s);  // 0: 1 byte/s, not infinite
}

// Test that --bandwidth limits the rate only when it is below the link's.
TEST(LimitedRate, TheLowerOfLinkAndBandwidth) {
  EXPECT_EQ(limited_rate(125e6, 0), 125e6);
  EXPECT_EQ(limited_rate(125e6, 10'000'000), 10e6);
  EXPECT_EQ(limited_rate(125e6, 1'000'000'000), 125e6);
}

// Test that predict() gives each transfer type its model, with --bandwidth
// limiting the copy (and a QSM's pause paying the whole link), and
// --max-downtime reaching the pre-copy model.
TEST(Predict, EachTypeItsModel) {
  TransferInput in;
  in.ram_bytes = 1000 * 1000 * 1000;
  in.disk_bytes = 500 * 1000 * 1000;
  in.dirty_bytes_per_s = 10e6;
  in.link_bytes_per_s = 100e6;

  in.type = Kind::kLive;
  LiveInput live{.ram_bytes = in.ram_bytes,
                 .disk_bytes = in.disk_bytes,
                 .dirty_bytes_per_s = in.dirty_bytes_per_s,
                 .link_bytes_per_s = in.link_bytes_per_s};
  EXPECT_EQ(predict(in).total, predict_live(live).total);
  in.type = Kind::kLiveVsm;
  EXPECT_EQ(predict(in).passes, predict_live(live).passes);
  in.max_downtime = 50ms;
  live.max_downtime = 50ms;
  EXPECT_EQ(predict(in).passes, predict_live(live).passes);
  EXPECT_EQ(predict(in).passes, 3);
  in.bandwidth = 50'000'000;
  live.link_bytes_per_s = 50e6;
  EXPECT_EQ(predict(in).total, predict_live(live).total);

  in.type = Kind::kQsm;
  QuickInput q{.ram_bytes = in.ram_bytes,
               .disk_bytes = in.disk_bytes,
               .link_bytes_per_s = 50e6,
               .pause_link_bytes_per_s = 100e6};
  EXPECT_EQ(predict(in).pause, predict_quick(q).pause);
  EXPECT_EQ(predict(in).disk_time, 10s);  // at the --bandwidth limit
  in.type = Kind::kQuick;
  q.copies = false;
  EXPECT_EQ(predict(in).total, predict_quick(q).total);
  EXPECT_EQ(predict(in).disk_time.count(), 0);
  in.other_host = false;
  q.other_host = false;
  EXPECT_EQ(predict(in).pause, predict_quick(q).pause);

  in.type = Kind::kNetwork;
  EXPECT_EQ(predict(in).total, predict_network(in.disk_bytes, 50e6).total);
}

}  // namespace
}  // namespace vmshift::migrate
