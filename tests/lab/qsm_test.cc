// Quick storage migration, quick migration and network migration between
// two lab hosts, through the real command line, with guests writing
// throughout and vmshift-verify after every move; and failures injected at
// each step of a QSM (VMSHIFT_FAIL_AT, VMSHIFT_HOLD_AT + kill -9): the VM
// always ends up running on the source or at the destination, never
// neither, with no lost writes.
// Run through tests/lab/run-lab-test, which takes every lab down afterwards.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <future>
#include <optional>
#include <stdexcept>

#include "support/host_pair_lab.h"
#include "support/wait.h"

namespace vmshift::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

const std::string kImages = "/var/lib/libvirt/images";
const std::string kShared = "/var/lib/libvirt/shared";

class QsmLab : public HostPairLab {
 protected:
  static void SetUpTestSuite() { start_lab("qsm"); }
  static void TearDownTestSuite() { stop_lab(); }

  // No overlay and no state file of vmshift's left in a directory.
  static void expect_no_leftovers(const std::string& host, const std::string& dir) {
    RunResult r = lab_->in_host(host, {"ls", dir});
    EXPECT_THAT(r.out, ::testing::Not(HasSubstr("vmshift"))) << host << ":" << dir;
  }
  // The disk is one image: no backing file.
  static void expect_single_image(const std::string& host, const std::string& path) {
    Json info = image_info(host, path);
    EXPECT_FALSE(info.has("backing-filename")) << host << ":" << path << " " << info.dump();
  }
  static std::string step_detail(const Json& job, const std::string& step) {
    for (const auto& s : job.get("steps").items())
      if (s.get_string("name") == step) return s.get_string("detail");
    return "";
  }
};

// Test that a QSM of a writing guest with two disks to host2 ends with the
// guest running there on one merged image per disk, the source clean, the
// pause recorded and a small part of the whole (the bases copy while the
// guest runs), and no write lost.
TEST_F(QsmLab, ToAnotherHost) {
  boot("far", {"--disks", "2", "--disk-size", "1G", "--fill", "160"});
  Json done = migrate("far", "host2", {"--type", "qsm", "--bandwidth", "40"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  expect_only_on("far", "host2");
  for (const char* d : {"vda", "vdb"}) {
    std::string path = fmt::format("{}/far-{}.qcow2", kImages, d);
    EXPECT_EQ(live_disks(*lab_, "host2", "far").at(d), path);
    EXPECT_EQ(live_disks(*lab_, "host2", "far", true).at(d), path);
    expect_single_image("host2", path);
    EXPECT_FALSE(exists("host1", path));
  }
  expect_no_leftovers("host1", kImages);
  expect_no_leftovers("host2", kImages);
  Json job = cli_->jobs().at(0);
  EXPECT_EQ(job.get_string("type"), "qsm");
  std::int64_t pause = job.get_int("pause_ms");
  std::int64_t total = job.get_int("total_ms");
  EXPECT_GT(pause, 0);
  // The bases (about 3x the saved state here) copy while the guest runs,
  // so the pause is the smaller part; under TCG on a loaded machine saving
  // the state alone can take a third of the move, hence no tighter bound.
  EXPECT_LT(pause * 2, total) << "the pause is not the smaller part of the move: " << job.dump();
  EXPECT_TRUE(job.find_int("predicted_pause_ms").has_value());
  lab_->expect_writes_continue("far", 1);
  lab_->expect_verified("far", 2);
  destroy("host2", "far");
}

// Test that a QSM on one host moves the disk into another location and the
// guest stays defined there with the new path.
TEST_F(QsmLab, OnTheSameHost) {
  boot("near", {"--fill", "32", "--disk-size", "128M"});
  Json done = migrate("near", "host1", {"--type", "qsm", "--storage", "shared"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  std::string path = kShared + "/near-vda.qcow2";
  EXPECT_EQ(live_disks(*lab_, "host1", "near").at("vda"), path);
  EXPECT_EQ(live_disks(*lab_, "host1", "near", true).at("vda"), path);
  expect_single_image("host1", path);
  EXPECT_FALSE(exists("host1", kImages + "/near-vda.qcow2"));
  expect_no_leftovers("host1", kImages);
  expect_no_leftovers("host1", kShared);
  lab_->expect_writes_continue("near");
  lab_->expect_verified("near");
  destroy("host1", "near");
}

// Test that a quick migration of a guest on shared storage moves it to
// host2 through a saved state, with its pause recorded.
TEST_F(QsmLab, QuickMigrationOnSharedStorage) {
  boot("quick", {"--storage", "shared"});
  Json done = migrate("quick", "host2", {"--type", "quick"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  EXPECT_TRUE(done.find_int("pause_ms").has_value());
  expect_only_on("quick", "host2");
  EXPECT_EQ(live_disks(*lab_, "host2", "quick").at("vda"), kShared + "/quick-vda.qcow2");
  expect_no_leftovers("host2", kShared);
  lab_->expect_writes_continue("quick");
  lab_->expect_verified("quick");
  destroy("host2", "quick");
}

// Test that a shut-off guest with two local disks moves by network
// migration (the plan's choice), starts on host2 with --start, and its data
// verifies.
TEST_F(QsmLab, NetworkMigrationOfAShutOffVm) {
  boot("off", {"--disks", "2", "--fill", "32", "--disk-size", "128M"});
  lab_->expect_writes_continue("off", 1);
  lab_->virsh("host1", {"destroy", "off"});
  RunResult plan = cli_->run({"plan", "off", "--to", "host2"});
  EXPECT_THAT(plan.out, HasSubstr("type: network"));
  Json done = migrate("off", "host2", {"--start"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  expect_only_on("off", "host2");
  EXPECT_FALSE(exists("host1", kImages + "/off-vda.qcow2"));
  EXPECT_EQ(step_detail(cli_->jobs().at(0), "verify"), "every copy has its source's checksums");
  lab_->expect_writes_continue("off", 1);
  lab_->expect_verified("off", 2);
  destroy("host2", "off");
}

// Test that a network migration of a shut-off guest onto other storage of
// its own host keeps it defined there (never undefined: its definition and
// NVRAM stay) with the new path, removes the old file only after the
// verified copy, and the guest starts on the new file with its data.
TEST_F(QsmLab, NetworkMigrationOnItsOwnHost) {
  boot("self", {"--fill", "32", "--disk-size", "128M"});
  lab_->expect_writes_continue("self");
  lab_->virsh("host1", {"destroy", "self"});
  Json done = migrate("self", "host1", {"--storage", "shared"});
  ASSERT_EQ(done.get_string("state"), "completed") << done.dump();
  ASSERT_TRUE(defined(*lab_, "host1", "self")) << "the VM's definition was removed";
  EXPECT_EQ(domstate(*lab_, "host1", "self"), "shut off");
  EXPECT_EQ(live_disks(*lab_, "host1", "self", true).at("vda"), kShared + "/self-vda.qcow2");
  EXPECT_TRUE(exists("host1", kShared + "/self-vda.qcow2"));
  EXPECT_FALSE(exists("host1", kImages + "/self-vda.qcow2"));
  EXPECT_EQ(step_detail(cli_->jobs().at(0), "verify"), "every copy has its source's checksums");
  lab_->virsh("host1", {"start", "self"});
  lab_->expect_writes_continue("self");
  lab_->expect_verified("self");
  destroy("host1", "self");
}

// Test that a shut-off VM whose definition has UEFI firmware state (an
// NVRAM file) is refused a network migration to another host, with the
// file named, and stays defined on host1 with its disk and its NVRAM
// intact. (host2 has the firmware files, so only the firmware check can
// refuse it.)
TEST_F(QsmLab, NetworkMigrationRefusesFirmwareState) {
  std::string disk = kImages + "/fw-vda.qcow2";
  std::string loader = "/var/lib/libvirt/boot/fw-CODE.fd";
  std::string nvram = "/var/lib/libvirt/qemu/nvram/fw_VARS.fd";
  for (const char* h : {"host1", "host2"}) {
    lab_->in_host(h, {"mkdir", "-p", "/var/lib/libvirt/qemu/nvram", "/var/lib/libvirt/boot"});
    lab_->in_host(h, {"truncate", "-s", "1M", loader});
  }
  lab_->in_host("host1", {"cp", "/etc/hostname", nvram});
  lab_->in_host("host2", {"truncate", "-s", "128K", nvram});
  lab_->in_host("host1", {"qemu-img", "create", "-q", "-f", "qcow2", disk, "16M"});
  std::string before = lab_->in_host("host1", {"sha256sum", nvram}).out;
  std::string xml = cli_->state_dir() + "/fw.xml";
  std::ofstream(xml) << "<domain type='qemu'><name>fw</name><memory>65536</memory><os><type "
                        "arch='x86_64' machine='q35'>hvm</type><loader readonly='yes' "
                        "type='pflash'>"
                     << loader << "</loader><nvram>" << nvram
                     << "</nvram></os><features><acpi/></features><devices><disk type='file' "
                        "device='disk'><driver name='qemu' type='qcow2'/><source file='"
                     << disk << "'/><target dev='vda' bus='virtio'/></disk></devices></domain>";
  lab_->virsh("host1", {"define", xml});
  RunResult plan = cli_->run({"plan", "fw", "--to", "host2"});
  EXPECT_THAT(plan.out, HasSubstr("type: network"));
  EXPECT_THAT(plan.out, HasSubstr("fail  firmware"));
  EXPECT_THAT(plan.out, HasSubstr("NVRAM " + nvram + " on host 'host1'"));
  RunResult run = cli_->run({"migrate", "fw", "--to", "host2"});
  EXPECT_EQ(run.status.code, 1) << run.out << run.err;
  EXPECT_THAT(run.err, HasSubstr("a network migration does not copy firmware state"));
  EXPECT_TRUE(defined(*lab_, "host1", "fw"));
  EXPECT_FALSE(defined(*lab_, "host2", "fw"));
  EXPECT_TRUE(exists("host1", disk));
  EXPECT_FALSE(exists("host2", disk));
  EXPECT_EQ(lab_->in_host("host1", {"sha256sum", nvram}).out, before) << "the NVRAM changed";
  if (defined(*lab_, "host1", "fw")) lab_->virsh("host1", {"undefine", "fw", "--keep-nvram"});
  if (defined(*lab_, "host2", "fw")) lab_->virsh("host2", {"undefine", "fw", "--keep-nvram"});
  for (const char* h : {"host1", "host2"}) lab_->in_host(h, {"rm", "-f", disk, loader, nvram});
}

// Test failures at each step of a QSM to host2: the copy's process killed
// (recovery merges back), a failure just after the save, a failed restore,
// and the process killed during the pause (recovery restores on the
// source). Each time the guest ends up running on host1 on its original
// file, host2 has nothing, and no write is lost.
TEST_F(QsmLab, FailuresAtEachStep) {
  boot("fail", {"--fill", "64", "--disk-size", "160M"});
  std::string disk = kImages + "/fail-vda.qcow2";
  auto expect_back_on_host1 = [&](const std::string& why) {
    SCOPED_TRACE(why);
    expect_only_on("fail", "host1");
    EXPECT_EQ(live_disks(*lab_, "host1", "fail").at("vda"), disk);
    expect_single_image("host1", disk);
    EXPECT_FALSE(exists("host2", disk));
    expect_no_leftovers("host1", kImages);
    expect_no_leftovers("host2", kImages);
    lab_->expect_writes_continue("fail");
  };

  // Injected failures: after the save (the state on its way), the restore.
  for (std::string at : {"transferred", "restore"}) {
    Json done = migrate("fail", "host2", {"--type", "qsm"}, {"VMSHIFT_FAIL_AT=" + at});
    EXPECT_EQ(done.get_string("state"), "failed") << done.dump();
    EXPECT_THAT(done.get_string("message"), HasSubstr("The VM was restored and runs on host "
                                                      "'host1' on its original files"));
    expect_back_on_host1(at);
  }

  // The process killed while held after the copy, and during the pause.
  for (std::string at : {"copied", "transferred"}) {
    SCOPED_TRACE("killed at " + at);
    Process p = cli_->start({"migrate", "fail", "--to", "host2", "--type", "qsm", "--json"},
                            {"VMSHIFT_HOLD_AT=" + at});
    UniqueFd out = p.take_stdout();
    ASSERT_TRUE(wait_for_text(out, "held at " + at, Deadline::after(120s))) << cli_->jobs().dump();
    std::int64_t id = cli_->jobs().at(0).get_int("id");
    cli_->kill_job_process(id);
    p.wait(Deadline::after(10s));
    RunResult r = cli_->run({"jobs"});
    EXPECT_THAT(r.err, HasSubstr(fmt::format("job {} (qsm of fail) recovered, rolled-back", id)));
    expect_back_on_host1("killed at " + at);
  }
  lab_->expect_verified("fail");
  destroy("host1", "fail");
}

// Everything a process writes to fd until it closes it (or the deadline).
std::string read_rest(const UniqueFd& fd, Deadline deadline) {
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{.fd = fd.get(), .events = POLLIN, .revents = 0};
    int n = ::poll(&p, 1, deadline.poll_timeout_ms());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    ssize_t r = ::read(fd.get(), buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return out;
    out.append(buf, static_cast<std::size_t>(r));
  }
}

// Test that a job store that another program keeps locked (BEGIN
// EXCLUSIVE) for longer than the store's busy timeout while a QSM is in
// its pause (the VM saved, its state and overlay on host2) does not strand
// the VM: the job undoes itself from memory, the guest runs again on host1
// on its original file, host2 keeps nothing, no write is lost, and once
// the lock is gone the job's end is recorded, saying the store could not
// be written.
TEST_F(QsmLab, StoreLockedDuringThePause) {
  boot("locked", {"--fill", "64", "--disk-size", "160M"});
  std::string disk = kImages + "/locked-vda.qcow2";
  Process p = cli_->start({"migrate", "locked", "--to", "host2", "--type", "qsm", "--json"},
                          {"VMSHIFT_HOLD_AT=transferred"});
  UniqueFd out = p.take_stdout();
  ASSERT_TRUE(wait_for_text(out, "held at transferred", Deadline::after(120s)))
      << cli_->jobs().dump();
  std::int64_t id = cli_->jobs().at(0).get_int("id");
  EXPECT_EQ(domstate(*lab_, "host1", "locked"), "shut off") << "not in the pause";

  // The helper holds the write lock for 25 s: longer than the store's 10 s.
  SpawnOptions so;
  so.pipe_stdout = true;
  so.kill_with_parent = true;
  Process locker = spawn(Argv{"python3", "-c",
                              "import sqlite3, sys, time\n"
                              "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                              "c.execute('BEGIN EXCLUSIVE')\n"
                              "print('locked', flush=True)\n"
                              "time.sleep(25)\n",
                              cli_->state_dir() + "/jobs.db"},
                         so);
  UniqueFd locked = locker.take_stdout();
  ASSERT_TRUE(wait_for_text(locked, "locked", Deadline::after(30s)));

  // The job undoes itself while the store is locked, then records its end.
  std::string rest = read_rest(out, Deadline::after(180s));
  std::optional<ExitStatus> st = p.wait(Deadline::after(30s));
  ASSERT_TRUE(st) << rest;
  EXPECT_TRUE(locker.wait(Deadline::after(30s)));
  std::vector<Json> ev = json_lines(rest);
  ASSERT_FALSE(ev.empty()) << rest;
  Json done = ev.back();
  EXPECT_EQ(done.get_string("state"), "failed") << done.dump();
  EXPECT_THAT(done.get_string("message"), HasSubstr("could not be written"));
  EXPECT_THAT(done.get_string("message"),
              HasSubstr("The VM was restored and runs on host 'host1' on its original files"));

  Json job = cli_->job(id);
  EXPECT_EQ(job.get_string("state"), "failed") << job.dump();
  EXPECT_THAT(job.get_string("error"), HasSubstr("could not be written"));
  expect_only_on("locked", "host1");
  EXPECT_EQ(live_disks(*lab_, "host1", "locked").at("vda"), disk);
  expect_single_image("host1", disk);
  EXPECT_FALSE(exists("host2", disk));
  expect_no_leftovers("host1", kImages);
  expect_no_leftovers("host2", kImages);
  lab_->expect_writes_continue("locked");
  lab_->expect_verified("locked");
  destroy("host1", "locked");
}

// Test that a hang-up of the terminal during a QSM's pause (SIGHUP to the
// foreground vmshift once the VM is saved) ends only that command: the job
// goes on in its own process and completes with no further command (only
// libvirt is asked until the guest runs on host2), and no write is lost.
TEST_F(QsmLab, HangUpDuringThePauseCompletesTheMove) {
  boot("hup", {"--fill", "32", "--disk-size", "128M"});
  Process p = cli_->start({"migrate", "hup", "--to", "host2", "--type", "qsm", "--json"});
  UniqueFd out = p.take_stdout();
  ASSERT_TRUE(wait_for_text(out, R"("step":"save","state":"done")", Deadline::after(180s)));
  ::kill(p.pid(), SIGHUP);
  std::optional<ExitStatus> st = p.wait(Deadline::after(30s));
  ASSERT_TRUE(st.has_value()) << "the foreground vmshift did not end after SIGHUP";
  EXPECT_EQ(st->code, 2) << st->describe();
  EXPECT_TRUE(wait_until(180s, [&] {
    return defined(*lab_, "host2", "hup") && domstate(*lab_, "host2", "hup") == "running" &&
           !defined(*lab_, "host1", "hup");
  })) << "the move did not finish by itself";
  Json job = cli_->jobs().at(0);
  EXPECT_EQ(job.get_string("state"), "completed") << job.dump();
  expect_only_on("hup", "host2");
  EXPECT_EQ(live_disks(*lab_, "host2", "hup").at("vda"), kImages + "/hup-vda.qcow2");
  expect_no_leftovers("host1", kImages);
  expect_no_leftovers("host2", kImages);
  lab_->expect_writes_continue("hup");
  lab_->expect_verified("hup");
  destroy("host2", "hup");
}

// Test that SIGINT and SIGTERM to the foreground vmshift while a QSM's
// bases are copied (the VM still runs on host1) cancel it cleanly: the
// command waits for the undo and reports it; the VM runs on host1 on its
// original file and host2 has nothing of it.
TEST_F(QsmLab, InterruptCancelsCleanly) {
  boot("intr", {"--fill", "32", "--disk-size", "128M"});
  std::string disk = kImages + "/intr-vda.qcow2";
  for (int sig : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(strsignal(sig));
    Process p = cli_->start({"migrate", "intr", "--to", "host2", "--type", "qsm", "--json"},
                            {"VMSHIFT_HOLD_AT=copied"});
    UniqueFd out = p.take_stdout();
    ASSERT_TRUE(wait_for_text(out, "held at copied", Deadline::after(180s)));
    ::kill(p.pid(), sig);
    std::string rest = read_rest(out, Deadline::after(120s));
    std::optional<ExitStatus> st = p.wait(Deadline::after(10s));
    ASSERT_TRUE(st.has_value()) << rest;
    EXPECT_EQ(st->code, 1) << st->describe();
    std::vector<Json> ev = json_lines(rest);
    ASSERT_FALSE(ev.empty()) << rest;
    EXPECT_EQ(ev.back().get_string("event"), "finished") << rest;
    EXPECT_EQ(ev.back().get_string("state"), "cancelled") << rest;
    EXPECT_THAT(ev.back().get_string("message"), HasSubstr("runs on host 'host1'")) << rest;
    expect_only_on("intr", "host1");
    EXPECT_EQ(live_disks(*lab_, "host1", "intr").at("vda"), disk);
    expect_single_image("host1", disk);
    EXPECT_FALSE(exists("host2", disk));
    expect_no_leftovers("host1", kImages);
    expect_no_leftovers("host2", kImages);
  }
  lab_->expect_writes_continue("intr");
  lab_->expect_verified("intr");
  destroy("host1", "intr");
}

// Stops a lab host's libvirtd (SIGSTOP) while it lives; SIGCONT at the end,
// also when the test fails.
class StoppedLibvirtd {
 public:
  StoppedLibvirtd(const std::string& lab_dir, const std::string& host) {
    std::string pid_text = read_text(fmt::format("{}/hosts/{}/run/libvirtd.pid", lab_dir, host));
    pid_ = static_cast<pid_t>(std::stol(pid_text));
    if (::kill(pid_, SIGSTOP) != 0) throw std::runtime_error("cannot stop libvirtd of " + host);
  }
  ~StoppedLibvirtd() { ::kill(pid_, SIGCONT); }
  StoppedLibvirtd(const StoppedLibvirtd&) = delete;
  StoppedLibvirtd& operator=(const StoppedLibvirtd&) = delete;

 private:
  pid_t pid_ = -1;
};

// Test that a destination host that stops answering (its libvirtd stopped
// with SIGSTOP while a QSM is held after the copy, then the job cancelled)
// does not hold the job forever: its calls to that host fail within the
// keepalive's bound, the VM is put back on host1, and the job ends with a
// message that says where the VM runs and what host2 may still hold.
TEST_F(QsmLab, DeadHostFailsWithinABound) {
  boot("dead", {"--fill", "32", "--disk-size", "128M"});
  std::string disk = kImages + "/dead-vda.qcow2";
  Process p = cli_->start({"migrate", "dead", "--to", "host2", "--type", "qsm", "--json"},
                          {"VMSHIFT_HOLD_AT=copied"});
  UniqueFd out = p.take_stdout();
  ASSERT_TRUE(wait_for_text(out, "held at copied", Deadline::after(180s)));
  std::int64_t id = cli_->jobs().at(0).get_int("id");
  std::string rest;
  std::optional<ExitStatus> st;
  auto began = std::chrono::steady_clock::now();
  {
    StoppedLibvirtd stopped(lab_->dir(), "host2");
    RunResult c = cli_->run({"jobs", "cancel", std::to_string(id)});
    ASSERT_TRUE(c.status.success()) << c.out << c.err;
    rest = read_rest(out, Deadline::after(90s));
    st = p.wait(Deadline::after(5s));
  }
  auto took = std::chrono::steady_clock::now() - began;
  ASSERT_TRUE(st.has_value()) << "the job still waits on the stopped host2 after "
                              << std::chrono::duration_cast<std::chrono::seconds>(took).count()
                              << " s: " << rest;
  std::vector<Json> ev = json_lines(rest);
  ASSERT_FALSE(ev.empty()) << rest;
  Json done = ev.back();
  EXPECT_EQ(done.get_string("event"), "finished") << rest;
  EXPECT_NE(done.get_string("state"), "completed") << rest;
  EXPECT_THAT(done.get_string("message"), HasSubstr("runs on host 'host1'")) << rest;
  EXPECT_THAT(done.get_string("message"), HasSubstr("host 'host2'")) << rest;
  // host1 answered throughout: the VM is back on its original file.
  EXPECT_EQ(domstate(*lab_, "host1", "dead"), "running");
  EXPECT_EQ(live_disks(*lab_, "host1", "dead").at("vda"), disk);
  expect_single_image("host1", disk);
  // What the stopped host2 kept of the copy goes now.
  lab_->in_host("host2", {"rm", "-f", disk});
  lab_->expect_writes_continue("dead");
  lab_->expect_verified("dead");
  destroy("host1", "dead");
}

// Test that vmshift processes planning at the same time share the
// transient storage pools through which they see the guest's other files
// (libvirt allows one pool per directory, and each ends with its process):
// none of them finds the guest's kernel missing on the destination.
TEST_F(QsmLab, ConcurrentPlansSharePools) {
  boot("many", {});
  for (int round = 0; round < 3; ++round) {
    std::vector<std::future<RunResult>> runs;
    for (int i = 0; i < 6; ++i)
      runs.push_back(std::async(std::launch::async, [&] {
        return cli_->run({"plan", "many", "--to", "host2", "--type", "qsm", "--no-measure"});
      }));
    for (auto& f : runs) {
      RunResult r = f.get();
      EXPECT_EQ(r.status.code, 0) << r.out << r.err;
      EXPECT_THAT(r.out, ::testing::Not(HasSubstr("lacks")));
    }
  }
  destroy("host1", "many");
}

}  // namespace
}  // namespace vmshift::testing
