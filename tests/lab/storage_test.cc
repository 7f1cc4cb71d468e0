// Live storage migration (vmshift move-storage) of libvirt guests on a lab
// host, through the real command line: real libvirtd, real QEMU, a guest
// writing its ledger throughout, and vmshift-verify after every move.
// Run through tests/lab/run-lab-test, which takes every lab down afterwards.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "base/json.h"
#include "base/subprocess.h"
#include "support/lab.h"
#include "support/temp_dir.h"
#include "support/vmshift_cli.h"
#include "support/wait.h"

namespace vmshift::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

const std::string kImages = "/var/lib/libvirt/images";
const std::string kShared = "/var/lib/libvirt/shared";

class StorageLab : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    lab_ = new Lab("storage");
    lab_->up(1);
  }
  static void TearDownTestSuite() {
    delete lab_;
    lab_ = nullptr;
  }
  // Each test has its own job store.
  void SetUp() override { cli_ = std::make_unique<VmshiftCli>(*lab_); }

  RunResult vmshift(const Argv& args, const std::vector<std::string>& extra_env = {},
                    std::chrono::seconds limit = 300s) {
    return cli_->run(args, extra_env, limit);
  }
  Process start_vmshift(const Argv& args, const std::vector<std::string>& extra_env = {}) {
    return cli_->start(args, extra_env);
  }
  Json job(std::int64_t id) { return cli_->job(id); }
  Json jobs() { return cli_->jobs(); }
  // Starts `move-storage ... --detach --json`; returns the job id.
  std::int64_t detach(const Argv& args, const std::vector<std::string>& extra_env = {}) {
    Argv a = {"move-storage"};
    a.insert(a.end(), args.begin(), args.end());
    return cli_->detach(a, extra_env);
  }
  // Runs vmshift with its stderr on a pseudo-terminal, as in an
  // interactive shell; returns what the terminal showed and the exit code.
  std::pair<std::string, int> vmshift_on_terminal(const Argv& args) {
    int master = -1, slave = -1;
    char name[128] = {};
    if (::openpty(&master, &slave, name, nullptr, nullptr) != 0)
      throw std::runtime_error("openpty failed");
    std::string shown;
    std::thread reader([&] {
      char buf[4096];
      for (;;) {
        ssize_t n = ::read(master, buf, sizeof buf);
        if (n <= 0) break;  // EIO once every writer has closed the terminal
        shown.append(buf, static_cast<std::size_t>(n));
      }
    });
    SpawnOptions o = cli_->options();
    o.pipe_stderr = false;
    o.stderr_file = name;
    Argv argv = {vmshift_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p = spawn(argv, o);
    ::close(slave);
    std::optional<ExitStatus> st = p.wait(Deadline::after(300s));
    if (!st) p.kill();
    reader.join();
    ::close(master);
    return {shown, st ? st->code : -1};
  }
  std::string job_log(std::int64_t id) const { return cli_->job_log(id); }

  static void boot(const std::string& guest, const Argv& extra = {}) {
    Argv a = {"guest", guest, "--host", "host1"};
    a.insert(a.end(), extra.begin(), extra.end());
    lab_->run(a);
  }
  static void mkdir(const std::string& dir) { lab_->in_host("host1", {"mkdir", "-p", dir}); }
  static bool exists(const std::string& path) {
    return lab_->in_host("host1", {"test", "-e", path}).status.success();
  }
  // target -> source file of the running guest.
  static std::map<std::string, std::string> live_disks(const std::string& guest,
                                                       bool inactive = false) {
    return testing::live_disks(*lab_, "host1", guest, inactive);
  }
  // qemu-img info of a file on host1.
  static Json image_info(const std::string& path) {
    RunResult r =
        lab_->in_host("host1", {"qemu-img", "info", "--force-share", "--output=json", path});
    if (!r.status.success()) throw std::runtime_error("qemu-img info failed: " + r.err);
    return Json::parse(r.out);
  }
  static std::string domstate(const std::string& guest) {
    return testing::domstate(*lab_, "host1", guest);
  }
  // Whether libvirt has a block job on the disk.
  static bool block_job(const std::string& guest, const std::string& disk) {
    std::string raw = lab_->virsh("host1", {"blockjob", guest, disk, "--raw"});
    return raw.find("cur=") != std::string::npos;
  }
  static void destroy(const std::string& guest) { lab_->virsh("host1", {"destroy", guest}); }

  // JSON lines of a --json run.
  static std::vector<Json> events(const std::string& out) { return json_lines(out); }

  static Lab* lab_;
  std::unique_ptr<VmshiftCli> cli_;
};
Lab* StorageLab::lab_ = nullptr;

// Test that `vmshift hosts` shows each lab host reachable with its CPU, free
// memory and free space per storage location, and `vmshift vms` each disk
// with format, sizes and path; an unknown host is an error naming the known.
TEST_F(StorageLab, ListsHostsAndVms) {
  boot("list", {"--disks", "2", "--disk-size", "128M", "--fill", "32"});
  RunResult h = vmshift({"hosts", "--json"});
  ASSERT_TRUE(h.status.success()) << h.out << h.err;
  Json host = Json::parse(h.out).at(0);
  EXPECT_EQ(host.get_string("name"), "host1");
  EXPECT_EQ(host.get_string("state"), "up");
  EXPECT_FALSE(host.get_string("cpu").empty());
  EXPECT_GT(host.get_int("free_memory"), 0);
  std::map<std::string, std::int64_t> free;
  for (const auto& loc : host.get("storage").items())
    free[loc.get_string("path")] = loc.find_int("free_bytes").value_or(-1);
  EXPECT_GT(free[kImages], 0);
  EXPECT_GT(free[kShared], 0);
  RunResult table = vmshift({"hosts"});
  EXPECT_THAT(table.out, ContainsRegex("host1 +up +\\S+ +[0-9.]+ [MG]iB")) << table.out;

  RunResult v = vmshift({"vms", "--host", "host1", "--json"});
  ASSERT_TRUE(v.status.success()) << v.out << v.err;
  Json vm;
  for (const auto& x : Json::parse(v.out).items())
    if (x.get_string("name") == "list") vm = x;
  ASSERT_FALSE(vm.is_null()) << v.out;
  EXPECT_EQ(vm.get_string("state"), "running");
  ASSERT_EQ(vm.get("disks").size(), 2u);
  Json vdb = vm.get("disks").at(1);
  EXPECT_EQ(vdb.get_string("target"), "vdb");
  EXPECT_EQ(vdb.get_string("format"), "qcow2");
  EXPECT_EQ(vdb.get_string("path"), kImages + "/list-vdb.qcow2");
  EXPECT_EQ(vdb.get_int("capacity"), 128LL << 20);
  EXPECT_GE(vdb.get_int("allocation"), 32LL << 20);
  EXPECT_LT(vdb.get_int("allocation"), 100LL << 20);
  EXPECT_EQ(vdb.get("backing").size(), 0u);

  RunResult bad = vmshift({"vms", "--host", "nosuch"});
  EXPECT_EQ(bad.status.code, 1);
  EXPECT_THAT(bad.err, HasSubstr("host1")) << bad.err;
  destroy("list");
}

// Test that one disk of a writing guest moves to another directory with no
// write lost: the guest runs on the new file (live and persistent
// definition), the source file is gone, the job records the pause, and a
// 10 GiB disk with little data stays sparse at the destination.
TEST_F(StorageLab, MovesOneSparseDiskWhileTheGuestWrites) {
  boot("one", {"--disk-size", "10G"});
  mkdir(kImages + "/moved");
  std::string src = kImages + "/one-vda.qcow2";
  std::string dst = kImages + "/moved/one-vda.qcow2";
  lab_->expect_writes_continue("one");
  std::int64_t src_alloc = image_info(src).get_int("actual-size");

  RunResult r = vmshift({"move-storage", "one", "--to", kImages + "/moved", "--json"});
  ASSERT_TRUE(r.status.success()) << r.out << r.err;
  std::vector<Json> ev = events(r.out);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.front().get_string("event"), "started");
  const Json& last = ev.back();
  EXPECT_EQ(last.get_string("event"), "finished");
  EXPECT_EQ(last.get_string("state"), "completed") << last.dump();
  EXPECT_TRUE(last.has("pause_ms")) << last.dump();
  EXPECT_TRUE(std::any_of(ev.begin(), ev.end(), [](const Json& e) {
    return e.get_string("event") == "progress" && e.get_int("total") > 0;
  })) << r.out;

  EXPECT_EQ(domstate("one"), "running");
  EXPECT_EQ(live_disks("one").at("vda"), dst);
  EXPECT_EQ(live_disks("one", true).at("vda"), dst) << "the persistent definition was not updated";
  EXPECT_FALSE(exists(src)) << "the source file was not deleted";
  Json info = image_info(dst);
  EXPECT_EQ(info.get_string("format"), "qcow2");
  EXPECT_EQ(info.get_int("virtual-size"), 10LL << 30);
  std::int64_t dst_alloc = info.get_int("actual-size");
  EXPECT_LT(dst_alloc, 256LL << 20)
      << "a 10 GiB disk with " << src_alloc << " bytes allocated did not stay sparse";
  EXPECT_LT(dst_alloc, 2 * src_alloc + (64LL << 20));

  Json j = job(last.get_int("job"));
  EXPECT_EQ(j.get_string("state"), "completed");
  EXPECT_GE(j.get_int("pause_ms"), 0);
  EXPECT_LT(j.get_int("pause_ms"), 5000);
  for (const char* s : {"check", "copy", "pivot", "verify", "persist", "cleanup"})
    EXPECT_EQ(step_state(j, s), "done") << s;

  lab_->expect_writes_continue("one");
  lab_->expect_verified("one");
  destroy("one");
}

// Test that two disks move at once to shared storage and the guest, writing
// on both, loses nothing; on a terminal the move shows a progress bar and
// each step.
TEST_F(StorageLab, MovesTwoDisksAtOnce) {
  boot("two", {"--disks", "2", "--disk-size", "512M", "--fill", "192"});
  lab_->expect_writes_continue("two", 1);
  auto [shown, code] = vmshift_on_terminal({"move-storage", "two", "--to", kShared});
  ASSERT_EQ(code, 0) << shown;
  EXPECT_THAT(shown, HasSubstr("moving 2 disks of VM 'two' on host 'host1'"));
  EXPECT_THAT(shown, ContainsRegex("\\[[#.]{24}\\] (copy|ready) +[0-9.]+%.* ETA")) << shown;
  EXPECT_THAT(shown, ContainsRegex("pivot +done +vda [0-9]+ ms, vdb [0-9]+ ms")) << shown;
  EXPECT_THAT(shown, HasSubstr("cleanup  done     source files deleted")) << shown;
  EXPECT_EQ(domstate("two"), "running");
  auto disks = live_disks("two");
  EXPECT_EQ(disks.at("vda"), kShared + "/two-vda.qcow2");
  EXPECT_EQ(disks.at("vdb"), kShared + "/two-vdb.qcow2");
  EXPECT_FALSE(exists(kImages + "/two-vda.qcow2"));
  EXPECT_FALSE(exists(kImages + "/two-vdb.qcow2"));
  lab_->expect_writes_continue("two", 0);
  lab_->expect_writes_continue("two", 1);
  lab_->expect_verified("two", 2);
  destroy("two");
}

// Test that a guest writing faster than --bandwidth makes a plain mirror stop
// converging, which is reported after --progress-timeout with the VM left on
// its source; and that --sync-writes (write-blocking) then converges.
TEST_F(StorageLab, SyncWritesConvergeWhenTheGuestOutrunsTheCopy) {
  boot("fast", {"--write-rate", "max"});
  mkdir(kImages + "/fast");
  std::string src = kImages + "/fast-vda.qcow2";
  std::string dst = kImages + "/fast/fast-vda.qcow2";
  lab_->expect_writes_continue("fast");

  RunResult slow = vmshift({"move-storage", "fast", "--to", kImages + "/fast", "--bandwidth", "1",
                            "--progress-timeout", "8"});
  EXPECT_EQ(slow.status.code, 1) << slow.out << slow.err;
  EXPECT_THAT(slow.out + slow.err, HasSubstr("not converging")) << slow.out << slow.err;
  EXPECT_THAT(slow.out + slow.err, HasSubstr("The VM runs on its original disks"));
  EXPECT_EQ(live_disks("fast").at("vda"), src);
  EXPECT_FALSE(exists(dst)) << "the partial destination was left behind";

  RunResult sync = vmshift(
      {"move-storage", "fast", "--to", kImages + "/fast", "--bandwidth", "1", "--sync-writes"});
  ASSERT_TRUE(sync.status.success()) << sync.out << sync.err;
  // Not on a terminal: no progress bar, just the plan and the result.
  EXPECT_THAT(sync.err, Not(HasSubstr("ETA"))) << sync.err;
  EXPECT_THAT(sync.out, HasSubstr("completed: moved 1 disk")) << sync.out;
  EXPECT_EQ(domstate("fast"), "running");
  EXPECT_EQ(live_disks("fast").at("vda"), dst);
  EXPECT_FALSE(exists(src));
  lab_->expect_writes_continue("fast");
  lab_->expect_verified("fast");
  destroy("fast");
}

// Test that cancelling during the copy, and again while every copy is in
// sync waiting for the switch, leaves the VM on its source with no
// destination file and no write lost.
TEST_F(StorageLab, CancelInCopyAndReadyPhases) {
  boot("cancel");
  mkdir(kImages + "/cancel");
  std::string src = kImages + "/cancel-vda.qcow2";
  std::string dst = kImages + "/cancel/cancel-vda.qcow2";
  lab_->expect_writes_continue("cancel");

  // Copy phase: 1 MiB/s keeps it copying for a while.
  std::int64_t id = detach({"cancel", "--to", kImages + "/cancel", "--bandwidth", "1"});
  ASSERT_TRUE(wait_until(60s, [&] {
    Json j = job(id);
    return j.get_string("state") == "running" && j.get_int("bytes_done") > 0;
  })) << job(id).dump();
  EXPECT_TRUE(exists(dst));
  RunResult c = vmshift({"jobs", "cancel", std::to_string(id)});
  EXPECT_TRUE(c.status.success()) << c.out << c.err;
  RunResult w = vmshift({"jobs", "wait", std::to_string(id), "--timeout", "60"});
  EXPECT_EQ(w.status.code, 1) << w.out << w.err;
  EXPECT_THAT(w.out, HasSubstr("cancelled"));
  Json j = job(id);
  EXPECT_EQ(j.get_string("state"), "cancelled");
  EXPECT_THAT(j.get_string("error"), HasSubstr("during the copy"));
  EXPECT_THAT(j.get_string("error"), HasSubstr("The VM runs on its original disks"));
  EXPECT_EQ(step_state(j, "copy"), "undone");
  EXPECT_EQ(step_state(j, "pivot"), "pending");
  EXPECT_EQ(live_disks("cancel").at("vda"), src);
  EXPECT_FALSE(exists(dst)) << "the partial destination was left behind";
  EXPECT_TRUE(exists(src));
  lab_->expect_writes_continue("cancel");

  // Ready phase: the job holds once in sync (VMSHIFT_HOLD_AT), still mirroring.
  id = detach({"cancel", "--to", kImages + "/cancel"}, {"VMSHIFT_HOLD_AT=ready"});
  ASSERT_TRUE(wait_until(60s, [&] {
    return job_log(id).find("held at ready") != std::string::npos;
  })) << job_log(id);
  EXPECT_EQ(step_state(job(id), "copy"), "running");
  EXPECT_TRUE(exists(dst));
  c = vmshift({"jobs", "cancel", std::to_string(id)});
  EXPECT_TRUE(c.status.success()) << c.out << c.err;
  w = vmshift({"jobs", "wait", std::to_string(id), "--timeout", "60"});
  EXPECT_EQ(w.status.code, 1) << w.out << w.err;
  j = job(id);
  EXPECT_EQ(j.get_string("state"), "cancelled");
  EXPECT_THAT(j.get_string("error"), HasSubstr("before the switch"));
  EXPECT_EQ(live_disks("cancel").at("vda"), src);
  EXPECT_FALSE(exists(dst)) << "the destination was left behind";
  EXPECT_EQ(domstate("cancel"), "running");
  lab_->expect_writes_continue("cancel");
  lab_->expect_verified("cancel");
  destroy("cancel");
}

// Test that a vmshift process killed with SIGKILL is recovered by the next
// vmshift command: during the copy the job is rolled back (mirror cancelled,
// destination removed, VM on its source); right after the switch it is
// completed (definition updated, source deleted). No write is lost.
TEST_F(StorageLab, KilledProcessIsRecovered) {
  boot("killed");
  mkdir(kImages + "/killed");
  std::string src = kImages + "/killed-vda.qcow2";
  std::string dst = kImages + "/killed/killed-vda.qcow2";
  lab_->expect_writes_continue("killed");

  // Killed during the copy.
  Process p = start_vmshift(
      {"move-storage", "killed", "--to", kImages + "/killed", "--bandwidth", "1", "--json"});
  ASSERT_TRUE(wait_until(60s, [&] {
    Json all = jobs();
    return all.size() == 1 && all.at(0).get_string("state") == "running" &&
           all.at(0).get_int("bytes_done") > 0;
  })) << jobs().dump();
  std::int64_t id = jobs().at(0).get_int("id");
  cli_->kill_job_process(id);
  p.wait(Deadline::after(10s));
  EXPECT_TRUE(block_job("killed", "vda")) << "the mirror should outlive the killed process";

  RunResult r = vmshift({"jobs"});
  EXPECT_TRUE(r.status.success()) << r.err;
  EXPECT_THAT(r.err,
              HasSubstr(fmt::format("job {} (live-storage of killed) recovered, rolled-back", id)));
  EXPECT_THAT(r.out, ContainsRegex(fmt::format("{} +rolled-back", id)));
  Json j = job(id);
  EXPECT_EQ(j.get_string("state"), "rolled-back");
  EXPECT_THAT(j.get_string("error"), HasSubstr("died before the switch"));
  EXPECT_THAT(j.get_string("error"), HasSubstr(src));
  EXPECT_EQ(live_disks("killed").at("vda"), src);
  EXPECT_FALSE(exists(dst));
  EXPECT_FALSE(block_job("killed", "vda")) << "recovery left the mirror running";
  lab_->expect_writes_continue("killed");

  // Killed right after the switch.
  Process q = start_vmshift({"move-storage", "killed", "--to", kImages + "/killed", "--json"},
                            {"VMSHIFT_HOLD_AT=switched"});
  ASSERT_TRUE(wait_until(60s, [&] {
    Json all = jobs();
    return all.size() == 2 && step_state(all.at(0), "pivot") == "done";
  })) << jobs().dump();
  id = jobs().at(0).get_int("id");
  cli_->kill_job_process(id);
  q.wait(Deadline::after(10s));
  EXPECT_EQ(live_disks("killed").at("vda"), dst);

  r = vmshift({"jobs"});
  EXPECT_THAT(r.err,
              HasSubstr(fmt::format("job {} (live-storage of killed) recovered, completed", id)));
  j = job(id);
  EXPECT_EQ(j.get_string("state"), "completed") << j.dump();
  EXPECT_EQ(step_state(j, "cleanup"), "done") << j.dump();
  EXPECT_EQ(live_disks("killed").at("vda"), dst);
  EXPECT_EQ(live_disks("killed", true).at("vda"), dst);
  EXPECT_FALSE(exists(src)) << "recovery did not finish the cleanup";
  EXPECT_EQ(domstate("killed"), "running");
  lab_->expect_writes_continue("killed");
  lab_->expect_verified("killed");
  destroy("killed");
}

// Test that a switch QEMU does not finish by its deadline fails the move
// within that deadline, and leaves the disk's source and destination in
// place: QEMU may still finish the switch, and does once the destination
// answers again. The destination is a filesystem of its own, frozen
// (fsfreeze) once the copy is in sync, as a storage server that stops
// answering would leave it; VMSHIFT_SWITCH_SECONDS shortens the deadline.
TEST_F(StorageLab, SwitchThatDoesNotFinishKeepsBothFiles) {
  boot("slow");
  std::string dir = kImages + "/slow";
  std::string src = kImages + "/slow-vda.qcow2";
  std::string dst = dir + "/slow-vda.qcow2";
  std::string img = kImages + "/slow-dest.img";
  auto host = [&](const Argv& a) {
    RunResult r = lab_->in_host("host1", a);
    if (!r.status.success()) throw std::runtime_error(fmt::format("{}: {}", a.at(0), r.err));
  };
  host({"truncate", "-s", "256M", img});
  host({"mkfs.ext4", "-q", "-F", img});
  mkdir(dir);
  host({"mount", "-o", "loop", img, dir});
  // Thawed and unmounted whatever happens (the loop device goes with it).
  struct Unfreeze {
    std::function<void()> f;
    ~Unfreeze() { f(); }
  } unfreeze{[&] {
    lab_->in_host("host1", {"fsfreeze", "-u", dir});
    lab_->in_host("host1", {"umount", "-l", dir});
  }};
  lab_->expect_writes_continue("slow");

  TempDir tmp("vmshift-hold");
  std::string hold = tmp.file("hold");
  std::ofstream(hold) << "held\n";
  std::int64_t id =
      detach({"slow", "--to", dir},
             {"VMSHIFT_HOLD_AT=ready", "VMSHIFT_HOLD_FILE=" + hold, "VMSHIFT_SWITCH_SECONDS=10"});
  ASSERT_TRUE(wait_until(60s, [&] {
    return job_log(id).find("held at ready") != std::string::npos;
  })) << job_log(id);
  host({"fsfreeze", "-f", dir});
  auto released = std::chrono::steady_clock::now();
  std::filesystem::remove(hold);

  RunResult w = vmshift({"jobs", "wait", std::to_string(id), "--timeout", "120"});
  auto took = std::chrono::steady_clock::now() - released;
  EXPECT_EQ(w.status.code, 1) << w.out << w.err;
  EXPECT_LT(took, 60s) << "the switch's deadline was not honoured";
  Json j = job(id);
  EXPECT_EQ(j.get_string("state"), "failed") << j.dump();
  EXPECT_EQ(step_state(j, "pivot"), "failed");
  std::string msg = j.get_string("error");
  EXPECT_THAT(msg, HasSubstr("did not finish in time"));
  EXPECT_THAT(msg, HasSubstr("disk vda runs on '" + src + "' until it does and on '" + dst +
                             "' after; both files are kept"));
  EXPECT_TRUE(exists(src));
  EXPECT_TRUE(exists(dst)) << "the file QEMU may still switch to was deleted";
  EXPECT_EQ(live_disks("slow").at("vda"), src);
  EXPECT_EQ(domstate("slow"), "running");

  // The destination answers again: QEMU finishes the switch it was asked for.
  host({"fsfreeze", "-u", dir});
  EXPECT_TRUE(wait_until(60s, [&] { return !block_job("slow", "vda"); }))
      << "the switch never finished";
  EXPECT_EQ(live_disks("slow").at("vda"), dst);
  EXPECT_TRUE(exists(live_disks("slow", true).at("vda")))
      << "the definition names a file that is gone";
  lab_->expect_writes_continue("slow");
  lab_->expect_verified("slow");
  destroy("slow");
}

// Test that bad requests are refused before anything changes, with a
// message naming the disk and the problem: an existing destination, the
// VM's own file (by path, through a symbolic or hard link, and through a
// symlinked directory, even with --force), too little free space, an
// unknown VM and an unknown disk. No job is created and no file appears.
TEST_F(StorageLab, RefusesBadRequestsAndChangesNothing) {
  boot("refuse");
  std::string src = kImages + "/refuse-vda.qcow2";
  mkdir(kImages + "/taken");
  lab_->in_host("host1", {"touch", kImages + "/taken/refuse-vda.qcow2"});
  mkdir(kImages + "/small");
  lab_->in_host("host1", {"mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", kImages + "/small"});
  lab_->in_host("host1", {"ln", "-s", src, kImages + "/alias.qcow2"});
  lab_->in_host("host1", {"ln", src, kImages + "/hard.qcow2"});
  lab_->in_host("host1", {"ln", "-s", ".", kImages + "/self"});
  lab_->expect_writes_continue("refuse");

  struct Case {
    Argv args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"refuse", "--to", kImages + "/taken"},
       "destination '" + kImages +
           "/taken/refuse-vda.qcow2' of disk vda already exists (--force "
           "replaces it)"},
      {{"refuse", "--disk", "vda=" + src},
       "destination '" + src + "' of disk vda is a file the VM already uses"},
      {{"refuse", "--disk", "vda=" + kImages + "/alias.qcow2", "--force"},
       "is the file '" + src + "' the VM already uses"},
      {{"refuse", "--disk", "vda=" + kImages + "/hard.qcow2", "--force"},
       "is the file '" + src + "' the VM already uses"},
      {{"refuse", "--to", kImages + "/self", "--force"},
       "is the file '" + src + "' the VM already uses"},
      {{"refuse", "--to", kImages + "/small"},
       "not enough space in '" + kImages + "/small' for disk vda"},
      {{"nosuchvm", "--to", kImages + "/taken"}, "no VM named 'nosuchvm'"},
      {{"refuse", "--disk", "vdz=" + kImages + "/taken/x.qcow2"}, "vdz"},
      {{"refuse", "--to", kImages + "/no/such/dir"}, kImages + "/no/such/dir"},
      {{"refuse", "--disk", "vda=" + kImages + "/taken/1.qcow2", "--disk",
        "vda=" + kImages + "/taken/2.qcow2"},
       "disk vda is named twice"},
  };
  for (const auto& c : cases) {
    Argv a = {"move-storage"};
    a.insert(a.end(), c.args.begin(), c.args.end());
    RunResult r = vmshift(a);
    EXPECT_EQ(r.status.code, 1) << describe_argv(a) << "\n" << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << describe_argv(a);
    if (c.args[0] == "refuse") {
      EXPECT_THAT(r.err, HasSubstr("Nothing was changed")) << r.err;
    }
  }
  EXPECT_EQ(jobs().size(), 0u) << "a refusal left a job behind";
  EXPECT_EQ(live_disks("refuse").at("vda"), src);
  EXPECT_TRUE(exists(src));
  EXPECT_EQ(lab_->in_host("host1", {"ls", "-A", kImages + "/small"}).out, "");
  EXPECT_EQ(lab_->in_host("host1", {"stat", "-c", "%s", kImages + "/taken/refuse-vda.qcow2"}).out,
            "0\n")
      << "the existing destination was changed";
  lab_->in_host("host1", {"umount", kImages + "/small"});
  EXPECT_EQ(domstate("refuse"), "running");
  lab_->expect_writes_continue("refuse");
  lab_->expect_verified("refuse");
  destroy("refuse");
  RunResult off = vmshift({"move-storage", "refuse", "--to", kShared});
  EXPECT_EQ(off.status.code, 1);
  EXPECT_THAT(off.err, HasSubstr("is shut off: a live storage migration needs a running"));
  EXPECT_TRUE(exists(src));
  EXPECT_FALSE(exists(kShared + "/refuse-vda.qcow2"));
}

// Test that three move-storage jobs started at once on one host, with the
// default limit of 2 storage migrations per host, run two at a time: the
// third waits as queued, starts when a slot frees, and all complete with no
// write lost.
TEST_F(StorageLab, ThirdConcurrentMoveWaitsForASlot) {
  std::vector<std::string> guests = {"c1", "c2", "c3"};
  for (const auto& g : guests) boot(g, {"--write-rate", "5"});
  std::vector<Process> procs;
  for (const auto& g : guests)
    procs.push_back(
        start_vmshift({"move-storage", g, "--to", kShared, "--bandwidth", "2", "--json"}));

  int most_running = 0;
  bool saw_queued_while_two_ran = false;
  bool all_done = wait_until(300s, [&] {
    Json all = jobs();
    int running = 0, queued = 0, ended = 0;
    for (const auto& j : all.items()) {
      std::string s = j.get_string("state");
      running += s == "running" || s == "cancelling";
      queued += s == "queued";
      ended += s == "completed" || s == "failed" || s == "cancelled";
    }
    most_running = std::max(most_running, running);
    if (running == 2 && queued == 1) saw_queued_while_two_ran = true;
    return all.size() == 3 && ended == 3;
  });
  ASSERT_TRUE(all_done) << jobs().dump();
  for (auto& p : procs) {
    std::optional<ExitStatus> st = p.wait(Deadline::after(30s));
    EXPECT_TRUE(st && st->success());
  }
  EXPECT_EQ(most_running, 2) << "the per-host limit was not honoured";
  EXPECT_TRUE(saw_queued_while_two_ran);

  // The last to start started only after one of the others had ended.
  std::vector<Json> all = jobs().items();
  for (const auto& j : all) EXPECT_EQ(j.get_string("state"), "completed") << j.dump();
  auto by_start = all;
  std::sort(by_start.begin(), by_start.end(), [](const Json& a, const Json& b) {
    return a.get_int("started_ms") < b.get_int("started_ms");
  });
  std::int64_t first_end =
      std::min(by_start[0].get_int("ended_ms"), by_start[1].get_int("ended_ms"));
  EXPECT_GE(by_start[2].get_int("started_ms"), first_end);
  for (const auto& g : guests) {
    EXPECT_EQ(live_disks(g).at("vda"), kShared + "/" + g + "-vda.qcow2");
    lab_->expect_verified(g);
    destroy(g);
  }
}

}  // namespace
}  // namespace vmshift::testing
