// Live migration and live VM-and-storage migration (vmshift plan, migrate,
// rate, hosts baseline) between two lab hosts, through
// the real command line: real libvirtd daemons, real QEMU, guests writing
// their disk ledger and dirtying their memory ledger throughout, and
// vmshift-verify (disk writes and memory errors) after every move.
// Run through tests/lab/run-lab-test, which takes every lab down afterwards.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "base/json.h"
#include "support/host_pair_lab.h"
#include "support/lab.h"
#include "support/vmshift_cli.h"
#include "support/wait.h"

namespace vmshift::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

const std::string kImages = "/var/lib/libvirt/images";
const std::string kShared = "/var/lib/libvirt/shared";

// Two hosts, on the lab's own link speed: under TCG, QEMU 7.2 loses memory
// writes of guests during migrations, the more the longer they run
// (docs/live-migration.md); at the veth's own speed they stay short.
class MigrateLab : public HostPairLab {
 protected:
  static void SetUpTestSuite() { start_lab("migrate"); }
  static void TearDownTestSuite() { stop_lab(); }
};

// Watches two hosts for a guest running on both at once. A sample reads
// host1, host2, host1: only if host1 ran before and after host2 was seen
// running did both run at that moment (a source never resumes after the
// switch-over, so this cannot be two different moments).
class BothRunningWatch {
 public:
  BothRunningWatch(Lab& lab, std::string guest)
      : lab_(lab), guest_(std::move(guest)), thread_([this] { run(); }) {}
  ~BothRunningWatch() {
    stop_ = true;
    thread_.join();
  }
  int samples() const { return samples_; }
  bool both_seen() const { return both_; }

 private:
  std::string state(const std::string& host) {
    RunResult r = vmshift::run(Argv{"virsh", "--quiet", "-c", lab_.uri(host), "domstate", guest_},
                               Deadline::after(10s));
    return r.status.success() ? r.out.substr(0, r.out.find('\n')) : "";
  }
  void run() {
    while (!stop_) {
      bool a = state("host1") == "running";
      bool b = state("host2") == "running";
      bool c = state("host1") == "running";
      if (a && b && c) both_ = true;
      ++samples_;
    }
  }
  Lab& lab_;
  std::string guest_;
  std::atomic<bool> stop_{false}, both_{false};
  std::atomic<int> samples_{0};
  std::thread thread_;
};

// Test that a guest on shared storage, writing its disk and dirtying its
// memory, makes 10 round trips between the hosts: every job completes with
// its pause recorded, the guest never runs on both hosts at once, it runs
// only on its destination after each move, and no write or memory page is
// lost.
TEST_F(MigrateLab, TenRoundTripsOnSharedStorage) {
  boot("trip", {"--storage", "shared"});
  BothRunningWatch watch(*lab_, "trip");
  for (int i = 0; i < 10; ++i) {
    for (const char* to : {"host2", "host1"}) {
      SCOPED_TRACE(fmt::format("round trip {}, to {}", i + 1, to));
      Json done = migrate("trip", to);
      ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
      EXPECT_THAT(done.get_string("message"), HasSubstr("live migration of trip"));
      std::optional<std::int64_t> pause = done.find_int("pause_ms");
      ASSERT_TRUE(pause.has_value()) << done.dump();
      EXPECT_GT(*pause, 0);
      expect_only_on("trip", to);
    }
  }
  EXPECT_GT(watch.samples(), 20);
  EXPECT_FALSE(watch.both_seen()) << "the guest ran on both hosts at once";
  Json all = cli_->jobs();
  ASSERT_EQ(all.size(), 20u);
  for (const auto& j : all.items()) {
    EXPECT_EQ(j.get_string("type"), "live");
    EXPECT_TRUE(j.find_int("pause_ms").has_value()) << j.dump();
    EXPECT_TRUE(j.find_int("predicted_pause_ms").has_value()) << j.dump();
  }
  lab_->expect_writes_continue("trip");
  lab_->expect_verified("trip");
  destroy("host1", "trip");
}

// Test that a guest with two disks on host1's local storage moves with its
// disks to the same path on host2 (live VSM; the copies stay sparse and the
// source files go), then back into the shared storage with --storage, and
// that `vmshift plan` chose live-vsm with a prediction.
TEST_F(MigrateLab, LiveVsmLocalStorage) {
  boot("vsm", {"--disks", "2", "--disk-size", "1G", "--fill", "16"});
  std::string vda = kImages + "/vsm-vda.qcow2", vdb = kImages + "/vsm-vdb.qcow2";
  std::int64_t before = allocated("host1", vda);

  RunResult plan = cli_->run({"plan", "vsm", "--to", "host2"});
  EXPECT_EQ(plan.status.code, 0) << plan.out << plan.err;
  EXPECT_THAT(plan.out, HasSubstr("type: live-vsm"));
  EXPECT_THAT(plan.out, HasSubstr("vda: " + vda + " -> host2:" + vda));
  EXPECT_THAT(plan.out, HasSubstr("prediction: about"));
  EXPECT_THAT(plan.out, HasSubstr("(1 Gbit/s), assumed"));

  Json done = migrate("vsm", "host2");
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  expect_only_on("vsm", "host2");
  EXPECT_EQ(live_disks(*lab_, "host2", "vsm").at("vda"), vda);
  EXPECT_EQ(live_disks(*lab_, "host2", "vsm", true).at("vdb"), vdb);
  EXPECT_FALSE(exists("host1", vda)) << "the source file was not deleted";
  EXPECT_FALSE(exists("host1", vdb));
  std::int64_t after = allocated("host2", vda);
  EXPECT_LT(after, 1ll << 28) << "the copy of a 1 GiB disk with " << before
                              << " bytes allocated is not sparse";
  lab_->expect_writes_continue("vsm", 1);
  lab_->expect_verified("vsm", 2);

  done = migrate("vsm", "host1", {"--storage", "shared"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  expect_only_on("vsm", "host1");
  EXPECT_EQ(live_disks(*lab_, "host1", "vsm").at("vda"), kShared + "/vsm-vda.qcow2");
  EXPECT_EQ(live_disks(*lab_, "host1", "vsm", true).at("vdb"), kShared + "/vsm-vdb.qcow2");
  EXPECT_FALSE(exists("host2", vda));
  Json job = cli_->jobs().at(0);
  EXPECT_EQ(job.get_string("type"), "live-vsm");
  EXPECT_EQ(step_state(job, "cleanup"), "done");
  lab_->expect_writes_continue("vsm");
  lab_->expect_verified("vsm", 2);
  destroy("host1", "vsm");
}

// Test that --shallow moves only a disk's top layer (on host1's local
// storage) to host2, on top of its backing file on shared storage, and that
// without the backing file there the plan refuses it.
TEST_F(MigrateLab, ShallowLiveVsmKeepsTheBackingChain) {
  boot("shallow", {"--storage", "shared"});
  std::string base = kShared + "/shallow-vda.qcow2";
  std::string top = kImages + "/shallow-top.qcow2";
  lab_->virsh("host1", {"snapshot-create-as", "shallow", "--disk-only", "--no-metadata",
                        "--diskspec", "vda,file=" + top});
  ASSERT_EQ(live_disks(*lab_, "host1", "shallow").at("vda"), top);
  lab_->expect_writes_continue("shallow");

  RunResult p = cli_->run({"plan", "shallow", "--to", "host2", "--shallow"});
  EXPECT_EQ(p.status.code, 0) << p.out << p.err;
  EXPECT_THAT(p.out, HasSubstr("pass  backing      host 'host2' sees " + base + " (disk vda)"));
  Json done = migrate("shallow", "host2", {"--shallow"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  expect_only_on("shallow", "host2");
  EXPECT_EQ(live_disks(*lab_, "host2", "shallow").at("vda"), top);
  RunResult info =
      lab_->in_host("host2", {"qemu-img", "info", "--force-share", "--output=json", top});
  ASSERT_TRUE(info.status.success()) << info.err;
  EXPECT_EQ(Json::parse(info.out).get_string("backing-filename"), base);
  EXPECT_FALSE(exists("host1", top));
  EXPECT_TRUE(exists("host1", base)) << "the shared backing file must stay";
  lab_->expect_writes_continue("shallow");
  lab_->expect_verified("shallow");
  destroy("host2", "shallow");
}

// Test that xbzrle compression, multifd over parallel connections, and
// auto-converge each move a guest dirtying its memory, with nothing lost.
TEST_F(MigrateLab, CompressionMultifdAndAutoConverge) {
  boot("opts", {"--storage", "shared"});
  Json done = migrate("opts", "host2", {"--compress", "xbzrle"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  done = migrate("opts", "host1", {"--parallel", "2"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  done = migrate("opts", "host2", {"--auto-converge"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  expect_only_on("opts", "host2");
  lab_->expect_writes_continue("opts");
  lab_->expect_verified("opts");
  lab_->virsh("host2", {"destroy", "opts"});
  lab_->virsh("host2", {"undefine", "opts"});
}

// Test that a cancel in the memory phase of a live migration, and in the
// disk phase of a live VSM, leaves the guest running on host1, unchanged,
// with nothing left on host2.
TEST_F(MigrateLab, CancelInMemoryAndDiskPhases) {
  boot("cancel", {"--disk-size", "256M", "--fill", "96"});
  std::string vda = kImages + "/cancel-vda.qcow2";

  std::int64_t id = cli_->detach(
      {"migrate", "cancel", "--to", "host2", "--storage", "shared", "--bandwidth", "4"});
  wait_running(id, "disks");
  ASSERT_TRUE(exists("host2", kShared + "/cancel-vda.qcow2"));
  RunResult c = cli_->run({"jobs", "cancel", std::to_string(id)});
  EXPECT_TRUE(c.status.success()) << c.err;
  RunResult w = cli_->run({"jobs", "wait", std::to_string(id)});
  EXPECT_THAT(w.out, HasSubstr("cancelled: Cancelled by request during the migration. The VM "
                               "stays on host 'host1' (running), unchanged; the destination "
                               "images on host 'host2' were removed"));
  expect_only_on("cancel", "host1");
  EXPECT_FALSE(exists("host2", kShared + "/cancel-vda.qcow2"));
  EXPECT_EQ(live_disks(*lab_, "host1", "cancel").at("vda"), vda);
  lab_->expect_writes_continue("cancel");

  // Memory phase: the disk moves nowhere (--type live would refuse a local
  // disk), so move the guest's storage to the shared location first.
  RunResult ms = cli_->run({"move-storage", "cancel", "--to", kShared});
  ASSERT_TRUE(ms.status.success()) << ms.out << ms.err;
  id = cli_->detach({"migrate", "cancel", "--to", "host2", "--bandwidth", "2"});
  wait_running(id, "memory");
  EXPECT_EQ(cli_->job(id).get_string("type"), "live");
  cli_->run({"jobs", "cancel", std::to_string(id)});
  w = cli_->run({"jobs", "wait", std::to_string(id)});
  EXPECT_THAT(w.out, HasSubstr("cancelled: Cancelled by request during the migration. The VM "
                               "stays on host 'host1' (running), unchanged."));
  expect_only_on("cancel", "host1");
  lab_->expect_writes_continue("cancel");
  lab_->expect_verified("cancel");
  destroy("host1", "cancel");
}

// Test that a migration whose vmshift process is killed is found by the
// next command and rolled back: the migration libvirtd still ran is
// cancelled, the guest runs on host1, host2 has nothing.
TEST_F(MigrateLab, KilledProcessIsRolledBack) {
  boot("killed", {"--storage", "shared"});
  Process p = cli_->start({"migrate", "killed", "--to", "host2", "--bandwidth", "2", "--json"});
  ASSERT_TRUE(wait_until(90s, [&] {
    Json all = cli_->jobs();
    return all.size() == 1 && all.at(0).get_string("state") == "running" &&
           all.at(0).get_int("bytes_done") > 0;
  })) << cli_->jobs().dump();
  std::int64_t id = cli_->jobs().at(0).get_int("id");
  cli_->kill_job_process(id);
  p.wait(Deadline::after(10s));
  EXPECT_THAT(lab_->virsh("host1", {"domjobinfo", "killed"}), HasSubstr("Outgoing migration"))
      << "the migration should outlive the killed process";

  RunResult r = cli_->run({"jobs"});
  EXPECT_TRUE(r.status.success()) << r.err;
  EXPECT_THAT(r.err, HasSubstr(fmt::format("job {} (live of killed) recovered, rolled-back", id)));
  Json j = cli_->job(id);
  EXPECT_EQ(j.get_string("state"), "rolled-back");
  EXPECT_THAT(j.get_string("error"), HasSubstr("The VM runs on host 'host1', unchanged"));
  EXPECT_THAT(lab_->virsh("host1", {"domjobinfo", "killed"}), Not(HasSubstr("Outgoing")));
  expect_only_on("killed", "host1");
  lab_->expect_writes_continue("killed");
  lab_->expect_verified("killed");
  destroy("host1", "killed");
}

// Test what `vmshift plan` says, and that `vmshift migrate` refuses the same
// without changing anything: a name taken on the destination, too little
// space there, a forced type that cannot work; and that `vmshift rate` and
// `vmshift hosts baseline` answer on the lab.
TEST_F(MigrateLab, PlanRefusals) {
  boot("plan", {"--disk-size", "256M", "--fill", "64"});
  RunResult ok = cli_->run({"plan", "plan", "--to", "host2", "--json"});
  ASSERT_EQ(ok.status.code, 0) << ok.out << ok.err;
  Json p = Json::parse(ok.out);
  EXPECT_EQ(p.get_string("type"), "live-vsm");
  EXPECT_TRUE(p.get_bool("ok"));
  EXPECT_GT(p.get("prediction").get_int("total_ms"), 0);

  // Too little space: a 4 MiB file system on host2.
  lab_->in_host("host2", {"mkdir", "-p", kImages + "/small"});
  lab_->in_host("host2", {"mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", kImages + "/small"});
  RunResult small = cli_->run({"plan", "plan", "--to", "host2", "--disk",
                               "vda=" + kImages + "/small/v.qcow2", "--no-measure"});
  EXPECT_EQ(small.status.code, 1);
  EXPECT_THAT(small.out, HasSubstr("not measured: --no-measure"));
  EXPECT_THAT(small.out, HasSubstr("fail  space"));
  EXPECT_THAT(small.out, HasSubstr(kImages + "/small on host 'host2' has 4.0 MiB free; vda needs"));
  EXPECT_THAT(small.out, HasSubstr("result: refused: 1 check failed; nothing was changed"));

  // A VM of the same name on host2.
  std::string xml = cli_->state_dir() + "/plan.xml";
  std::ofstream(xml) << "<domain type='qemu'><name>plan</name><memory>65536</memory>"
                        "<os><type arch='x86_64'>hvm</type></os></domain>";
  lab_->virsh("host2", {"define", xml});
  RunResult clash = cli_->run({"migrate", "plan", "--to", "host2"});
  EXPECT_EQ(clash.status.code, 1);
  EXPECT_THAT(clash.err, HasSubstr("fail  name         host 'host2' already has a VM named "
                                   "'plan'"));
  EXPECT_THAT(clash.err, HasSubstr("refused: name: host 'host2' already has a VM named 'plan'. "
                                   "Nothing was changed; the VM stays on host 'host1'."));
  EXPECT_EQ(cli_->jobs().size(), 0u) << "a refusal left a job behind";
  lab_->virsh("host2", {"undefine", "plan"});

  RunResult forced = cli_->run({"plan", "plan", "--to", "host2", "--type", "live"});
  EXPECT_THAT(forced.out, HasSubstr("--type live keeps the disks where they are, but host "
                                    "'host2' does not see vda (on host1-local)"));
  RunResult postcopy = cli_->run({"plan", "plan", "--to", "host2", "--postcopy"});
  EXPECT_THAT(postcopy.out, HasSubstr("--postcopy is refused for a guest under TCG"));

  RunResult rate = cli_->run({"rate", "plan"});
  EXPECT_TRUE(rate.status.success()) << rate.err;
  EXPECT_THAT(rate.out, ::testing::ContainsRegex("host2 +\\*+\\.* +live-vsm"));
  RunResult base = cli_->run({"hosts", "baseline"});
  EXPECT_TRUE(base.status.success()) << base.err;
  EXPECT_THAT(base.out, HasSubstr("CPU model every host supports:"));
  lab_->expect_verified("plan");
  destroy("host1", "plan");
}

// Test that with max_live_migrations = 1 on host1 a second migration waits
// as queued while the first holds the slot (held before it starts moving,
// with VMSHIFT_HOLD_AT), and runs to completion once the first is cancelled.
TEST_F(MigrateLab, LimitQueuesTheSecondMigration) {
  boot("q1", {"--storage", "shared"});
  boot("q2", {"--storage", "shared"});
  std::string inv = read_text(lab_->dir() + "/vmshift.toml");
  std::string one = cli_->state_dir() + "/one.toml";
  std::string marker = "name = \"host1\"\n";
  inv.insert(inv.find(marker) + marker.size(), "max_live_migrations = 1\n");
  std::ofstream(one) << inv;
  std::vector<std::string> env = {"VMSHIFT_CONFIG=" + one};
  std::vector<std::string> hold = {"VMSHIFT_CONFIG=" + one, "VMSHIFT_HOLD_AT=prepared"};
  std::int64_t a = cli_->detach({"migrate", "q1", "--to", "host2"}, hold);
  ASSERT_TRUE(wait_until(60s, [&] { return step_state(cli_->job(a), "prepare") == "running"; }))
      << cli_->job(a).dump();
  std::int64_t b = cli_->detach({"migrate", "q2", "--to", "host2"}, env);
  EXPECT_EQ(cli_->job(b).get_string("state"), "queued");
  RunResult list = cli_->run({"jobs"}, env);
  EXPECT_THAT(list.out, ::testing::ContainsRegex(fmt::format("{} +queued +live +q2", b)));
  cli_->run({"jobs", "cancel", std::to_string(a)}, env);
  RunResult wa = cli_->run({"jobs", "wait", std::to_string(a)}, env);
  EXPECT_THAT(wa.out, HasSubstr("cancelled: Cancelled by request before the migration"));
  RunResult wb = cli_->run({"jobs", "wait", std::to_string(b)}, env);
  EXPECT_EQ(wb.status.code, 0) << wb.out;
  EXPECT_GE(cli_->job(b).get_int("started_ms"), cli_->job(a).get_int("ended_ms"));
  expect_only_on("q1", "host1");
  expect_only_on("q2", "host2");
  lab_->expect_verified("q2");
  destroy("host1", "q1");
  destroy("host2", "q2");
}

}  // namespace
}  // namespace vmshift::testing
